// What the enrollment node does with one message, free of Node-RED: enroll (create, or update under an
// etag), get, delete and query, single or bulk. The etag rule: an enrollment that exists is only changed
// by a request that carries its current etag, or that says to overwrite (force) — so two stations, or a
// station and a person in the portal, cannot silently undo each other's change.
import {
  batchesOf,
  duplicateIds,
  describeFailures,
  type BulkItemFailure,
  type BulkReport,
} from "./bulk-batches.js";
import type { BulkMode, BulkOperationResult, DpsEnrollmentService } from "./dps-service-client.js";
import {
  enrollmentIdOf,
  enrollmentOf,
  EnrollmentRequestError,
  type IndividualEnrollment,
} from "./enrollment-request.js";
import { DpsServiceError } from "./service-errors.js";

export const OPERATIONS = ["enroll", "get", "delete", "query"] as const;
export type EnrollmentOperation = (typeof OPERATIONS)[number];

export const DEFAULT_QUERY = "SELECT * FROM enrollments";
/** A query answer is one message: it stops after this many enrollments (msg.dps.continuationToken goes on). */
export const MAX_QUERY_ITEMS = 10_000;
const QUERY_PAGE_SIZE = 100;

export interface OperationRequest {
  operation: EnrollmentOperation;
  payload: unknown;
  /** Overwrite existing enrollments whatever their etag (msg.force, or etag "*"). */
  force?: boolean;
  batchSize: number;
  /** For query: go on from here (msg.dps.continuationToken of a previous answer). */
  continuationToken?: string;
}

export interface OperationOutcome {
  /** The new msg.payload: what DPS returned (the enrollment, the list, or the bulk report). */
  payload: unknown;
  /** msg.dps: how the request went (operation, etag, batches with DPS's raw bulk answers). */
  dps: Record<string, unknown>;
  /** Set when part of a bulk request failed: the message still goes out, and this reaches Catch. */
  partialFailure?: Error;
}

/** "enroll" for an empty topic; otherwise one of OPERATIONS, or an error naming them. */
export function operationOf(topic: unknown): EnrollmentOperation {
  const text = typeof topic === "string" ? topic.trim().toLowerCase() : "";
  if (text === "") return "enroll";
  if ((OPERATIONS as readonly string[]).includes(text)) return text as EnrollmentOperation;
  throw new EnrollmentRequestError(`unknown msg.topic "${String(topic)}": use ${OPERATIONS.join(", ")}`);
}

const httpStatusOf = (errorCode: number): number => Math.floor(errorCode / 1000);

export async function runOperation(
  service: DpsEnrollmentService,
  request: OperationRequest,
): Promise<OperationOutcome> {
  switch (request.operation) {
    case "enroll":
      return Array.isArray(request.payload) ? enrollMany(service, request) : enrollOne(service, request);
    case "get": {
      const { registrationId } = enrollmentIdOf(request.payload);
      const enrollment = await service.get(registrationId);
      return { payload: enrollment, dps: { operation: "get", registrationId, etag: enrollment.etag } };
    }
    case "delete":
      return Array.isArray(request.payload) ? deleteMany(service, request) : deleteOne(service, request);
    case "query":
      return query(service, request);
  }
}

async function enrollOne(
  service: DpsEnrollmentService,
  request: OperationRequest,
): Promise<OperationOutcome> {
  const enrollment = enrollmentOf(request.payload);
  const { registrationId } = enrollment;
  if (request.force || enrollment.etag === "*") {
    delete enrollment.etag; // no If-Match: create, or replace whatever is there
    const written = await service.createOrUpdate(enrollment);
    return {
      payload: written,
      dps: { operation: "enroll", action: "written", registrationId, etag: written.etag },
    };
  }
  if (enrollment.etag) {
    const updated = await service.createOrUpdate(enrollment);
    return {
      payload: updated,
      dps: { operation: "enroll", action: "updated", registrationId, etag: updated.etag },
    };
  }
  // No etag: create only. A bulk "create" is DPS's one create that refuses to replace an existing enrollment.
  const answer = await service.bulk("create", [enrollment]);
  const refused = answer.errors[0];
  if (!answer.isSuccessful || refused) {
    const code = refused?.errorCode ?? 0;
    const exists = httpStatusOf(code) === 409;
    throw new DpsServiceError(
      exists ? "conflict" : "badRequest",
      exists
        ? `enrollment ${registrationId} exists already: to change it, send its current etag in msg.payload.etag ` +
            `(from a "get"), or set msg.force to overwrite it`
        : `create enrollment ${registrationId} failed: ${refused?.errorStatus ?? "refused by DPS"}${code ? ` (error ${code})` : ""}`,
      { status: httpStatusOf(code), errorCode: code },
    );
  }
  const created = await service.get(registrationId);
  return {
    payload: created,
    dps: { operation: "enroll", action: "created", registrationId, etag: created.etag },
  };
}

interface BulkItem {
  index: number;
  enrollment: IndividualEnrollment;
}

interface BatchRecord {
  mode: BulkMode;
  registrationIds: string[];
  result?: BulkOperationResult;
  error?: string;
}

/** Runs `items` through bulk `mode` in batches; failures by position; stops at a failure of a whole call. */
async function runBatches(
  service: DpsEnrollmentService,
  mode: BulkMode,
  items: BulkItem[],
  batchSize: number,
  batches: BatchRecord[],
): Promise<{ failed: BulkItemFailure[]; abortedBy?: DpsServiceError }> {
  const failed: BulkItemFailure[] = [];
  const all = batchesOf(items, batchSize);
  for (let b = 0; b < all.length; b++) {
    const batch = all[b] ?? [];
    const registrationIds = batch.map((item) => item.enrollment.registrationId);
    try {
      const result = await service.bulk(
        mode,
        batch.map((item) => item.enrollment),
      );
      batches.push({ mode, registrationIds, result });
      for (const error of result.errors) {
        const item = batch.find(
          (i) => i.enrollment.registrationId.toLowerCase() === String(error.registrationId).toLowerCase(),
        );
        failed.push({
          index: item?.index ?? -1,
          registrationId: item?.enrollment.registrationId ?? String(error.registrationId),
          errorCode: Number(error.errorCode) || 0,
          errorStatus: String(error.errorStatus ?? "refused"),
        });
      }
      if (!result.isSuccessful && result.errors.length === 0) {
        for (const item of batch) {
          failed.push({
            index: item.index,
            registrationId: item.enrollment.registrationId,
            errorCode: 0,
            errorStatus: "DPS reported the batch as failed",
          });
        }
      }
    } catch (error) {
      const failure =
        error instanceof DpsServiceError ? error : new DpsServiceError("service", String(error));
      batches.push({ mode, registrationIds, error: failure.message });
      // Credentials or the connection failed: every later batch would fail the same way.
      for (const item of all.slice(b).flat()) {
        failed.push({
          index: item.index,
          registrationId: item.enrollment.registrationId,
          errorCode: failure.errorCode ?? (failure.status ?? 0) * 1000,
          errorStatus: failure.message,
        });
      }
      return { failed, abortedBy: failure };
    }
  }
  return { failed };
}

function reportOf(total: number, ids: Map<number, string>, failed: BulkItemFailure[]): BulkReport {
  const failedAt = new Set(failed.map((f) => f.index));
  const succeeded = [...ids.entries()].filter(([index]) => !failedAt.has(index)).map(([, id]) => id);
  failed.sort((a, b) => a.index - b.index);
  return { isSuccessful: failed.length === 0, total, succeeded, failed };
}

function outcomeOf(
  operation: string,
  report: BulkReport,
  batches: BatchRecord[],
  abortedBy?: DpsServiceError,
): OperationOutcome {
  const outcome: OperationOutcome = { payload: report, dps: { operation, bulk: true, batches } };
  if (abortedBy && report.succeeded.length === 0) {
    // nothing went through: the cause itself is the error
    outcome.partialFailure = new DpsServiceError(
      abortedBy.kind,
      `${describeFailures(report, 1)}`,
      abortedBy.details,
    );
  } else if (!report.isSuccessful) {
    outcome.partialFailure = new DpsServiceError("badRequest", describeFailures(report));
  }
  return outcome;
}

/** Parses each item of a bulk request; an item that does not parse becomes a failure at its index. */
function parseItems(
  items: unknown[],
  parse: (payload: unknown) => IndividualEnrollment,
): { valid: BulkItem[]; failed: BulkItemFailure[]; ids: Map<number, string> } {
  const failed: BulkItemFailure[] = [];
  const valid: BulkItem[] = [];
  const ids = new Map<number, string>();
  items.forEach((payload, index) => {
    try {
      const enrollment = parse(payload);
      valid.push({ index, enrollment });
      ids.set(index, enrollment.registrationId);
    } catch (error) {
      const id = (payload as { registrationId?: unknown } | null)?.registrationId;
      failed.push({
        index,
        registrationId: typeof id === "string" ? id : "",
        errorCode: 0,
        errorStatus: (error as Error).message,
      });
    }
  });
  return { valid, failed, ids };
}

async function enrollMany(
  service: DpsEnrollmentService,
  request: OperationRequest,
): Promise<OperationOutcome> {
  const items = request.payload as unknown[];
  const { valid, failed, ids } = parseItems(items, enrollmentOf);
  const duplicates = new Set(
    duplicateIds(valid.map((item) => item.enrollment.registrationId)).map((id) => id.toLowerCase()),
  );
  const seen = new Set<string>();
  const unique = valid.filter((item) => {
    const key = item.enrollment.registrationId.toLowerCase();
    if (duplicates.has(key) && seen.has(key)) {
      failed.push({
        index: item.index,
        registrationId: item.enrollment.registrationId,
        errorCode: 0,
        errorStatus: "the same registrationId occurs earlier in the array",
      });
      return false;
    }
    seen.add(key);
    return true;
  });

  const force = request.force === true;
  const conditional = unique.filter((item) => !force && item.enrollment.etag && item.enrollment.etag !== "*");
  const creates = unique.filter((item) => !conditional.includes(item));
  for (const item of creates) delete item.enrollment.etag;

  const batches: BatchRecord[] = [];
  const created = await runBatches(service, "create", creates, request.batchSize, batches);
  let abortedBy = created.abortedBy;
  let createFailures = created.failed;
  if (force && !abortedBy) {
    // overwrite: those that exist already (409) are updated instead
    const existing = new Set(
      createFailures.filter((f) => httpStatusOf(f.errorCode) === 409).map((f) => f.index),
    );
    createFailures = createFailures.filter((f) => !existing.has(f.index));
    const updated = await runBatches(
      service,
      "update",
      creates.filter((item) => existing.has(item.index)),
      request.batchSize,
      batches,
    );
    createFailures.push(...updated.failed);
    abortedBy = updated.abortedBy;
  }
  failed.push(...createFailures);
  if (!abortedBy) {
    const updated = await runBatches(service, "updateIfMatchETag", conditional, request.batchSize, batches);
    failed.push(...updated.failed);
    abortedBy = updated.abortedBy;
  } else {
    for (const item of conditional) {
      failed.push({
        index: item.index,
        registrationId: item.enrollment.registrationId,
        errorCode: 0,
        errorStatus: `not sent: ${abortedBy.message}`,
      });
    }
  }
  return outcomeOf("enroll", reportOf(items.length, ids, failed), batches, abortedBy);
}

async function deleteOne(
  service: DpsEnrollmentService,
  request: OperationRequest,
): Promise<OperationOutcome> {
  const { registrationId, etag } = enrollmentIdOf(request.payload);
  const conditional = request.force ? undefined : etag && etag !== "*" ? etag : undefined;
  await service.delete(registrationId, conditional);
  return { payload: { registrationId, deleted: true }, dps: { operation: "delete", registrationId } };
}

async function deleteMany(
  service: DpsEnrollmentService,
  request: OperationRequest,
): Promise<OperationOutcome> {
  const items = request.payload as unknown[];
  const { valid, failed, ids } = parseItems(items, (payload) => {
    const { registrationId, etag } = enrollmentIdOf(payload);
    // the bulk model is an enrollment; DPS reads the registration id (and etag) of a delete
    return { registrationId, ...(etag && !request.force ? { etag } : {}) } as IndividualEnrollment;
  });
  const batches: BatchRecord[] = [];
  const deleted = await runBatches(service, "delete", valid, request.batchSize, batches);
  failed.push(...deleted.failed);
  return outcomeOf("delete", reportOf(items.length, ids, failed), batches, deleted.abortedBy);
}

async function query(service: DpsEnrollmentService, request: OperationRequest): Promise<OperationOutcome> {
  const payload = request.payload;
  let text = DEFAULT_QUERY;
  if (typeof payload === "string" && payload.trim() !== "") text = payload.trim();
  else if (
    typeof payload === "object" &&
    payload !== null &&
    typeof (payload as { query?: unknown }).query === "string"
  ) {
    text = (payload as { query: string }).query;
  }
  const items: IndividualEnrollment[] = [];
  let continuationToken = request.continuationToken;
  let pages = 0;
  do {
    const page = await service.query(text, QUERY_PAGE_SIZE, continuationToken);
    items.push(...page.items);
    continuationToken = page.continuationToken;
    pages++;
  } while (continuationToken && items.length < MAX_QUERY_ITEMS);
  return {
    payload: items,
    dps: {
      operation: "query",
      query: text,
      count: items.length,
      pages,
      ...(continuationToken ? { continuationToken, truncated: true } : {}),
    },
  };
}
