// Store-and-forward queue for telemetry while the hub is away: bounded, first in first out, with an
// explicit overflow policy and a count of what it had to drop (docs/conventions.md §2.7).

export type OverflowPolicy = "drop-oldest" | "reject-new";

export interface OutboxOptions {
  /** Most messages kept. Default 1000. */
  capacity?: number;
  /** What a full outbox does with a new message. Default "drop-oldest" (fresh data matters more). */
  overflow?: OverflowPolicy;
}

export type PushResult<T> = { accepted: true; dropped?: T } | { accepted: false };

export class Outbox<T> {
  readonly capacity: number;
  readonly overflow: OverflowPolicy;
  private readonly items: T[] = [];
  private droppedCount = 0;

  constructor(options: OutboxOptions = {}) {
    this.capacity = options.capacity ?? 1000;
    this.overflow = options.overflow ?? "drop-oldest";
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError("outbox capacity must be a whole number >= 1");
    }
    if (this.overflow !== "drop-oldest" && this.overflow !== "reject-new") {
      throw new RangeError(`unknown outbox overflow policy "${String(this.overflow)}"`);
    }
  }

  get size(): number {
    return this.items.length;
  }

  /** Messages lost to overflow since the outbox was made. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Appends; when full, either evicts the oldest (returned as `dropped`) or refuses the new one. */
  push(item: T): PushResult<T> {
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return { accepted: true };
    }
    this.droppedCount += 1;
    if (this.overflow === "reject-new") return { accepted: false };
    const dropped = this.items.shift() as T;
    this.items.push(item);
    return { accepted: true, dropped };
  }

  /** The oldest message, left in place. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Takes the oldest message out. */
  shift(): T | undefined {
    return this.items.shift();
  }

  /**
   * Puts messages that could not be sent back at the front, oldest first, so that order is kept. The bound
   * still holds: when the outbox filled up meanwhile, the newest messages give way (returned) instead.
   */
  requeue(items: readonly T[]): T[] {
    this.items.unshift(...items);
    const excess = this.items.length - this.capacity;
    if (excess <= 0) return [];
    this.droppedCount += excess;
    return this.items.splice(this.capacity, excess);
  }

  /** Empties the outbox and returns what it held, oldest first. */
  drain(): T[] {
    return this.items.splice(0, this.items.length);
  }
}
