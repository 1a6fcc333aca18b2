// Bulk enrollment: DPS takes at most 10 enrollments per bulk operation (its documented limit), so an array
// from a station (a pallet of boards) goes out in batches, and DPS's per-batch answers, which name failed
// items by registration id only, are mapped back to the positions of the array.

/** DPS's limit on enrollments per bulk operation. */
export const MAX_BULK_BATCH = 10;

export interface BulkItemFailure {
  /** Position in msg.payload. */
  index: number;
  registrationId: string;
  /** DPS's error number, or 0 when the item was refused before it was sent. */
  errorCode: number;
  errorStatus: string;
}

export interface BulkReport {
  isSuccessful: boolean;
  total: number;
  /** Registration ids DPS accepted, in array order. */
  succeeded: string[];
  failed: BulkItemFailure[];
}

/** The batch size to use: a whole number from 1 to MAX_BULK_BATCH (default: the maximum). */
export function batchSizeOf(value: unknown): number {
  const size = Number(value);
  if (value === undefined || value === null || value === "") return MAX_BULK_BATCH;
  if (!Number.isInteger(size) || size < 1 || size > MAX_BULK_BATCH) {
    throw new RangeError(`the bulk batch size must be a whole number from 1 to ${MAX_BULK_BATCH}`);
  }
  return size;
}

export function batchesOf<T>(items: readonly T[], size: number): T[][] {
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += size) batches.push(items.slice(start, start + size));
  return batches;
}

/** Registration ids that occur more than once (DPS ids are case-insensitive). */
export function duplicateIds(ids: readonly string[]): string[] {
  const seen = new Set<string>();
  const duplicates = new Set<string>();
  for (const id of ids) {
    const key = id.toLowerCase();
    if (seen.has(key)) duplicates.add(id);
    seen.add(key);
  }
  return [...duplicates];
}

/** A short, secret-free summary of the failures for done(err): the first few, then a count. */
export function describeFailures(report: BulkReport, shown = 5): string {
  const listed = report.failed
    .slice(0, shown)
    .map(
      (f) =>
        `#${f.index} ${f.registrationId || "(no id)"}: ${f.errorStatus}${f.errorCode ? ` (${f.errorCode})` : ""}`,
    );
  const more = report.failed.length > shown ? `; and ${report.failed.length - shown} more` : "";
  return `${report.failed.length} of ${report.total} enrollment(s) failed: ${listed.join("; ")}${more}`;
}
