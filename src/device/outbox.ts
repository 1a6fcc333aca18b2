// The bounds of the telemetry outbox: how many messages and how many bytes may wait for the hub, and what a full
// outbox does with one more (docs/conventions.md §2.7). Both stores count the same way: every message not yet
// accepted by the hub, in flight included; bytes as messageBytes() counts them (outbox-record.ts).

export type OverflowPolicy = "drop-oldest" | "reject-new";

export interface OutboxBounds {
  maxMessages: number;
  maxBytes: number;
  /** What a full outbox does with a new message: evict the oldest waiting ones, or refuse the new one. */
  overflow: OverflowPolicy;
}

/** What the outbox holds now. */
export interface OutboxHolding {
  messages: number;
  bytes: number;
}

/**
 * Default bounds. On disk: 8 hours at 100 msg/s (2,880,000 messages, rounded up) and 1 GiB, so a gateway
 * sending ~300 B messages rides out a working day without the hub; in memory, where each waiting message
 * costs about 1 KB of heap besides its bytes: 10,000 messages and 16 MiB (docs/architecture.md §3.1).
 */
export const DEFAULT_BOUNDS = {
  disk: { maxMessages: 3_000_000, maxBytes: 1024 * 1024 * 1024 },
  memory: { maxMessages: 10_000, maxBytes: 16 * 1024 * 1024 },
} as const;

export function checkBounds(bounds: OutboxBounds): void {
  if (!Number.isInteger(bounds.maxMessages) || bounds.maxMessages < 1) {
    throw new RangeError("the outbox's most messages must be a whole number >= 1");
  }
  if (!Number.isInteger(bounds.maxBytes) || bounds.maxBytes < 1) {
    throw new RangeError("the outbox's most bytes must be a whole number >= 1");
  }
  if (bounds.overflow !== "drop-oldest" && bounds.overflow !== "reject-new") {
    throw new RangeError(`unknown outbox overflow policy "${String(bounds.overflow)}"`);
  }
}

/** Whether one more message of `bytes` fits beside what is held. */
export function fits(bounds: OutboxBounds, holding: OutboxHolding, bytes: number): boolean {
  return holding.messages + 1 <= bounds.maxMessages && holding.bytes + bytes <= bounds.maxBytes;
}
