// The hub's own timers: unref'd, failure-tolerant, and all cleared when the hub closes.

export class TimerSet {
  private readonly timers = new Set<NodeJS.Timeout>();

  set(callback: () => void, delayMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      try {
        callback();
      } catch {
        // Timer work only touches links that may be gone; nothing to recover.
      }
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
    return timer;
  }

  clear(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  clearAll(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
