// Cloud-to-device message queue of one device (hub-amqp-protocol.md §5.1; iot-hub-devguide-messages-c2d.md):
// at most 50 messages pending per device, 64 KB each, abandoned messages re-delivered up to 10 times,
// default time to live one hour.

export const C2dLimits = {
  maxPendingPerDevice: 50,
  maxMessageBytes: 64 * 1024,
  maxDeliveryCount: 10,
  defaultTtlMs: 60 * 60 * 1000,
} as const;

export interface C2dEntry {
  messageId: string;
  correlationId?: string;
  body: Buffer;
  properties: Record<string, string>;
  expiresAtMs: number;
  deliveryCount: number;
  /** Monotonic per hub, for the x-opt-sequence-number annotation. */
  sequenceNumber: number;
}

/** Pending entries of one device, plus those out on a link and not yet settled by the device. */
export class C2dQueue {
  private readonly pending: C2dEntry[] = [];
  private inFlight = 0;

  /** Messages counted against the per-device limit. */
  get size(): number {
    return this.pending.length + this.inFlight;
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
      this.inFlight += 1;
      entry.deliveryCount += 1;
      return entry;
    }
  }

  /** The device settled an in-flight message for good (complete, reject, dead letter). */
  settled(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  /** An in-flight message goes back to the head of the queue (abandon, or its link went away). */
  requeue(entry: C2dEntry): void {
    this.settled();
    this.pending.unshift(entry);
  }
}
