// Reported-properties updates with one round trip each. Updates run one batch at a time; updates made while a
// batch is on its way are merged into the next one (JSON merge patches compose: applying the merge equals
// applying them in turn, except where a later patch puts an object on a key an earlier one set to a value or
// null: such an update starts a batch of its own). Every update of a batch resolves with the version that
// batch produced.
export type ReportedPatch = Record<string, unknown>;

interface Waiting {
  patch: ReportedPatch;
  resolve(version: number): void;
  reject(error: Error): void;
}

export class ReportBatcher {
  private waiting: Waiting[] = [];
  private running = false;

  /** `send` makes one update on the hub and resolves with the reported $version it produced. */
  constructor(private readonly send: (patch: ReportedPatch) => Promise<number>) {}

  report(patch: ReportedPatch): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ patch, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.running || this.waiting.length === 0) return;
    const batch = this.takeBatch();
    this.running = true;
    const merged = batch.reduce<ReportedPatch>((sum, item) => mergePatches(sum, item.patch), {});
    this.send(merged)
      .then(
        (version) => batch.forEach((item) => item.resolve(version)),
        (error: Error) => batch.forEach((item) => item.reject(error)),
      )
      .finally(() => {
        this.running = false;
        this.next();
      });
  }

  /** The waiting updates from the front that merge exactly. */
  private takeBatch(): Waiting[] {
    let merged: ReportedPatch = {};
    let count = 0;
    for (const item of this.waiting) {
      if (count > 0 && !composes(merged, item.patch)) break;
      merged = mergePatches(merged, item.patch);
      count += 1;
    }
    return this.waiting.splice(0, count);
  }
}

function isObject(value: unknown): value is ReportedPatch {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** One merge patch that does what `first` then `second` do (when composes(first, second)). */
export function mergePatches(first: ReportedPatch, second: ReportedPatch): ReportedPatch {
  const result: ReportedPatch = { ...first };
  for (const [key, value] of Object.entries(second)) {
    const earlier = result[key];
    result[key] = isObject(value) && isObject(earlier) ? mergePatches(earlier, value) : value;
  }
  return result;
}

/** False where `second` puts an object on a key `first` set to something else: merging would not replace. */
export function composes(first: ReportedPatch, second: ReportedPatch): boolean {
  for (const [key, value] of Object.entries(second)) {
    if (!isObject(value) || !(key in first)) continue;
    const earlier = first[key];
    if (!isObject(earlier) || !composes(earlier, value)) return false;
  }
  return true;
}
