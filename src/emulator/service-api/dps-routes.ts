// DPS service API (Azure "Device Provisioning Service - Service" REST API, as azure-iot-provisioning-service
// calls it): individual enrollments, enrollment groups and device registration states, in Azure's JSON shapes.
// Paths are case-insensitive like Azure's; any api-version is accepted.
import type { EnrollmentStore } from "../dps/enrollment-store.js";
import type { EnrollmentGroup, IndividualEnrollment } from "../dps/types.js";
import { errors, ServiceApiError } from "./errors.js";
import type { Route, RouteContext, RouteResult } from "./router.js";

/** The part of the DPS enrollment store the service API drives. */
export type DpsServiceStore = Pick<
  EnrollmentStore,
  | "listIndividualEnrollments"
  | "getIndividualEnrollment"
  | "putIndividualEnrollment"
  | "deleteIndividualEnrollment"
  | "listEnrollmentGroups"
  | "getEnrollmentGroup"
  | "putEnrollmentGroup"
  | "deleteEnrollmentGroup"
  | "getRegistrationState"
  | "listRegistrationStates"
  | "deleteRegistrationState"
>;

// DPS error numbers (ProvisioningServiceErrorDetails.errorCode).
const ENROLLMENT_NOT_FOUND = 404201;
const REGISTRATION_NOT_FOUND = 404202;
const ENROLLMENT_GROUP_NOT_FOUND = 404203;

const notFound = (what: string, code: number) =>
  new ServiceApiError(404, "NotFound", `${what} not found`, code);

/** The If-Match header as sent (DPS etags are compared verbatim, quotes included); "*" or none = any. */
function ifMatch(context: RouteContext): string | undefined {
  const raw = context.request.headers["if-match"];
  if (typeof raw !== "string" || raw.trim() === "" || raw.trim() === "*") return undefined;
  return raw.trim();
}

const json = (body: unknown): RouteResult => ({ status: 200, body });

/** Pages a query result: x-ms-max-item-count in, x-ms-continuation (an offset) out. */
function page<T>(context: RouteContext, items: T[]): RouteResult {
  const maxHeader = Number(context.request.headers["x-ms-max-item-count"]);
  const pageSize = Number.isInteger(maxHeader) && maxHeader > 0 ? maxHeader : items.length || 1;
  const continuation = Number(context.request.headers["x-ms-continuation"] ?? 0);
  const start = Number.isInteger(continuation) && continuation > 0 ? continuation : 0;
  const slice = items.slice(start, start + pageSize);
  const next = start + pageSize;
  return {
    status: 200,
    body: slice,
    headers: {
      "x-ms-item-type": "Enrollment",
      ...(next < items.length ? { "x-ms-continuation": String(next) } : {}),
    },
  };
}

function sameId(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

async function putEnrollment(store: DpsServiceStore, context: RouteContext): Promise<RouteResult> {
  const id = context.params[0] ?? "";
  const body = (await context.json()) as unknown as IndividualEnrollment;
  if (body.registrationId === undefined) body.registrationId = id;
  if (typeof body.registrationId !== "string" || !sameId(body.registrationId, id)) {
    throw errors.badRequest("registrationId in the body does not match the path");
  }
  return json(store.putIndividualEnrollment(body, ifMatch(context) ?? body.etag));
}

async function putGroup(store: DpsServiceStore, context: RouteContext): Promise<RouteResult> {
  const id = context.params[0] ?? "";
  const body = (await context.json()) as unknown as EnrollmentGroup;
  if (body.enrollmentGroupId === undefined) body.enrollmentGroupId = id;
  if (typeof body.enrollmentGroupId !== "string" || !sameId(body.enrollmentGroupId, id)) {
    throw errors.badRequest("enrollmentGroupId in the body does not match the path");
  }
  return json(store.putEnrollmentGroup(body, ifMatch(context) ?? body.etag));
}

type BulkMode = "create" | "update" | "updateIfMatchETag" | "delete";

/** DPS's documented limit of enrollments per bulk operation: a larger one is refused as a whole. */
export const MAX_BULK_ENROLLMENTS = 10;

/** POST /enrollments (BulkEnrollmentOperation): every item is tried; failures are listed, not thrown. */
async function bulkEnrollments(store: DpsServiceStore, context: RouteContext): Promise<RouteResult> {
  const body = await context.json();
  const mode = body.mode as BulkMode;
  const enrollments = body.enrollments;
  if (!["create", "update", "updateIfMatchETag", "delete"].includes(mode) || !Array.isArray(enrollments)) {
    throw errors.badRequest(
      "a bulk operation needs mode (create|update|updateIfMatchETag|delete) and enrollments",
    );
  }
  if (enrollments.length > MAX_BULK_ENROLLMENTS) {
    throw errors.badRequest(`a bulk operation takes at most ${MAX_BULK_ENROLLMENTS} enrollments`);
  }
  const failures: Array<{ registrationId: string; errorCode: number; errorStatus: string }> = [];
  for (const item of enrollments as IndividualEnrollment[]) {
    const registrationId = typeof item?.registrationId === "string" ? item.registrationId : "";
    try {
      const existing = registrationId ? store.getIndividualEnrollment(registrationId) : undefined;
      if (mode === "create" && existing)
        throw new ServiceApiError(409, "Conflict", "enrollment exists", 409201);
      if (mode === "delete") {
        if (!store.deleteIndividualEnrollment(registrationId))
          throw notFound("enrollment", ENROLLMENT_NOT_FOUND);
      } else {
        if (mode !== "create" && !existing) throw notFound("enrollment", ENROLLMENT_NOT_FOUND);
        store.putIndividualEnrollment(item, mode === "updateIfMatchETag" ? item.etag : undefined);
      }
    } catch (error) {
      const status = (error as { status?: number }).status ?? 500;
      const code = (error as { errorCode?: unknown; dpsErrorCode?: number }).dpsErrorCode;
      const numeric = (error as { errorCode?: unknown }).errorCode;
      failures.push({
        registrationId,
        errorCode: typeof numeric === "number" ? numeric : (code ?? status * 1000),
        errorStatus: (error as Error).message,
      });
    }
  }
  return json({ isSuccessful: failures.length === 0, errors: failures });
}

export function dpsRoutes(store: DpsServiceStore): Route[] {
  const realm = "dps" as const;
  return [
    { method: "POST", realm, path: /^\/enrollments\/?$/i, handle: (c) => bulkEnrollments(store, c) },
    {
      method: "POST",
      realm,
      path: /^\/enrollments\/query\/?$/i,
      handle: (c) => page(c, store.listIndividualEnrollments()),
    },
    { method: "PUT", realm, path: /^\/enrollments\/([^/]+)$/i, handle: (c) => putEnrollment(store, c) },
    {
      method: "GET",
      realm,
      path: /^\/enrollments\/([^/]+)$/i,
      handle: (c) => {
        const found = store.getIndividualEnrollment(c.params[0] ?? "");
        if (!found) throw notFound("enrollment", ENROLLMENT_NOT_FOUND);
        return json(found);
      },
    },
    {
      method: "DELETE",
      realm,
      path: /^\/enrollments\/([^/]+)$/i,
      handle: (c) => {
        if (!store.deleteIndividualEnrollment(c.params[0] ?? "", ifMatch(c))) {
          throw notFound("enrollment", ENROLLMENT_NOT_FOUND);
        }
        return { status: 204 };
      },
    },
    {
      method: "POST",
      realm,
      path: /^\/enrollments\/([^/]+)\/attestationmechanism$/i,
      handle: (c) => {
        const found = store.getIndividualEnrollment(c.params[0] ?? "");
        if (!found) throw notFound("enrollment", ENROLLMENT_NOT_FOUND);
        return json(found.attestation);
      },
    },
    {
      method: "POST",
      realm,
      path: /^\/enrollmentGroups\/query\/?$/i,
      handle: (c) => page(c, store.listEnrollmentGroups()),
    },
    { method: "PUT", realm, path: /^\/enrollmentGroups\/([^/]+)$/i, handle: (c) => putGroup(store, c) },
    {
      method: "GET",
      realm,
      path: /^\/enrollmentGroups\/([^/]+)$/i,
      handle: (c) => {
        const found = store.getEnrollmentGroup(c.params[0] ?? "");
        if (!found) throw notFound("enrollment group", ENROLLMENT_GROUP_NOT_FOUND);
        return json(found);
      },
    },
    {
      method: "DELETE",
      realm,
      path: /^\/enrollmentGroups\/([^/]+)$/i,
      handle: (c) => {
        if (!store.deleteEnrollmentGroup(c.params[0] ?? "", ifMatch(c))) {
          throw notFound("enrollment group", ENROLLMENT_GROUP_NOT_FOUND);
        }
        return { status: 204 };
      },
    },
    {
      method: "POST",
      realm,
      path: /^\/enrollmentGroups\/([^/]+)\/attestationmechanism$/i,
      handle: (c) => {
        const found = store.getEnrollmentGroup(c.params[0] ?? "");
        if (!found) throw notFound("enrollment group", ENROLLMENT_GROUP_NOT_FOUND);
        return json(found.attestation);
      },
    },
    {
      method: "POST",
      realm,
      path: /^\/registrations\/([^/]+)\/query\/?$/i,
      handle: (c) => page(c, store.listRegistrationStates(c.params[0] ?? "")),
    },
    {
      method: "GET",
      realm,
      path: /^\/registrations\/([^/]+)$/i,
      handle: (c) => {
        const found = store.getRegistrationState(c.params[0] ?? "");
        if (!found) throw notFound("registration", REGISTRATION_NOT_FOUND);
        return json(found);
      },
    },
    {
      method: "DELETE",
      realm,
      path: /^\/registrations\/([^/]+)$/i,
      handle: (c) => {
        if (!store.deleteRegistrationState(c.params[0] ?? "", ifMatch(c))) {
          throw notFound("registration", REGISTRATION_NOT_FOUND);
        }
        return { status: 204 };
      },
    },
  ];
}
