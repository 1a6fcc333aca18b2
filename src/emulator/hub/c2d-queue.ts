// Cloud-to-device message queue of one device (docs/hub-amqp-protocol.md §5.1; https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-c2d):
// at most 50 messages pending per device, 64 KB each, abandoned messages re-delivered up to 10 times,
// a delivered message locked for one minute, default time to live one hour.
import type { C2dAck } from "./types.js";

export const C2dLimits = {
  maxPendingPerDevice: 50,
  maxMessageBytes: 64 * 1024,
  maxDeliveryCount: 10,
  defaultTtlMs: 60 * 60 * 1000,
  lockTimeoutMs: 60 * 1000,
} as const;

export interface C2dEntry {
  messageId: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  body: Buffer;
  properties: Record<string, string>;
  expiresAtMs: number;
  enqueuedAtMs: number;
  deliveryCount: number;
  /** Monotonic per hub, for the x-opt-sequence-number annotation. */
  sequenceNumber: number;
  ack: C2dAck;
}

/** Pending entries of one device, plus those out on a link and not yet settled by the device. */
export class C2dQueue {
  private readonly pending: C2dEntry[] = [];
  private readonly inFlight = new Set<C2dEntry>();

  /** Messages counted against the per-device limit. */
  get size(): number {
    return this.pending.length + this.inFlight.size;
  }

  /** Every message the device has not settled yet, oldest first (in-flight ones would come back after a restart). */
  entries(): C2dEntry[] {
    return [...this.inFlight, ...this.pending];
  }

  /** Messages waiting to be delivered (not out on a link). */
  get pendingCount(): number {
    return this.pending.length;
  }

  enqueue(entry: C2dEntry): void {
    this.pending.push(entry);
  }

  /** The next message that has not expired; expired ones are passed to `onExpired`. */
  takeNext(nowMs: number, onExpired: (entry: C2dEntry) => void): C2dEntry | undefined {
    for (;;) {
      const entry = this.pending.shift();
      if (!entry) return undefined;
      if (entry.expiresAtMs <= nowMs) {
        onExpired(entry);
        continue;
      }
      this.inFlight.add(entry);
      entry.deliveryCount += 1;
      return entry;
    }
  }

  /** The device settled an in-flight message for good (complete, reject, dead letter). */
  settled(entry: C2dEntry): void {
    this.inFlight.delete(entry);
  }

  /** An in-flight message goes back to the head of the queue (abandon, lock expiry, or its link went away). */
  requeue(entry: C2dEntry): void {
    this.inFlight.delete(entry);
    this.pending.unshift(entry);
  }
}
