// IoT Hub registry operations beyond one device: bulk create / update / delete (POST /devices with import
// modes, as azure-iothub's Registry.addDevices / updateDevices / removeDevices send them), the twin query
// (POST /devices/query, paged with x-ms-max-item-count / x-ms-continuation) and GET /statistics/devices.
import type { HubDeviceRecord, TwinSeed } from "../hub/types.js";
import { DeviceQueryError, parseDeviceQuery } from "./device-query.js";
import { errors, ServiceApiError } from "./errors.js";
import { parseJson } from "./http-io.js";
import {
  DEVICE_ID,
  deviceEtag,
  deviceRecordFrom,
  hubOfCaller,
  isObject,
  twinJson,
  type HubApiBackend,
} from "./hub-routes.js";
import type { Route, RouteContext, RouteResult } from "./router.js";

/** IoT Hub's limit on one bulk registry call. */
const MAX_BULK_OPERATIONS = 100;
/** Page size when the caller names none (IoT Hub's default for twin queries). */
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/** Numeric error codes of a bulk result, as IoT Hub reports them per device. */
const BULK_ERROR = {
  argumentInvalid: 400004,
  deviceNotFound: 404001,
  deviceAlreadyExists: 409001,
  preconditionFailed: 412002,
} as const;

interface BulkError {
  deviceId: string;
  errorCode: number;
  errorStatus: string;
}

type ImportMode =
  | "create"
  | "update"
  | "updateifmatchetag"
  | "createorupdate"
  | "createorupdateifmatchetag"
  | "delete"
  | "deleteifmatchetag";
const IMPORT_MODES: ReadonlySet<string> = new Set<ImportMode>([
  "create",
  "update",
  "updateifmatchetag",
  "createorupdate",
  "createorupdateifmatchetag",
  "delete",
  "deleteifmatchetag",
]);

function twinSeedOf(item: Record<string, unknown>): TwinSeed | undefined {
  const tags = isObject(item.tags) ? item.tags : undefined;
  const properties = isObject(item.properties) ? item.properties : undefined;
  const desired = properties && isObject(properties.desired) ? properties.desired : undefined;
  if (!tags && !desired) return undefined;
  return { ...(tags ? { tags } : {}), ...(desired ? { properties: { desired } } : {}) };
}

/** One import operation; returns its error, or undefined when it was applied. */
function applyImport(backend: HubApiBackend, hub: string, item: unknown): BulkError | undefined {
  const fail = (deviceId: string, errorCode: number, errorStatus: string): BulkError => ({
    deviceId,
    errorCode,
    errorStatus,
  });
  if (!isObject(item)) return fail("", BULK_ERROR.argumentInvalid, "Each operation must be an object.");
  const deviceId = typeof item.id === "string" ? item.id : "";
  if (!DEVICE_ID.test(deviceId)) return fail(deviceId, BULK_ERROR.argumentInvalid, "Invalid device id.");
  const mode = (typeof item.importMode === "string" ? item.importMode : "createOrUpdate").toLowerCase();
  if (!IMPORT_MODES.has(mode)) {
    return fail(
      deviceId,
      BULK_ERROR.argumentInvalid,
      `Import mode ${String(item.importMode)} is not supported.`,
    );
  }
  const existing = backend.registry.getDevice(hub, deviceId);
  const etagMatches = (): boolean => {
    const wanted = typeof item.eTag === "string" ? item.eTag : typeof item.etag === "string" ? item.etag : "";
    return existing !== undefined && (wanted === "*" || wanted.replace(/"/g, "") === deviceEtag(existing));
  };
  if (mode === "delete" || mode === "deleteifmatchetag") {
    if (!existing) return fail(deviceId, BULK_ERROR.deviceNotFound, `Device ${deviceId} not found.`);
    if (mode === "deleteifmatchetag" && !etagMatches())
      return fail(deviceId, BULK_ERROR.preconditionFailed, "The etag does not match.");
    backend.registry.deleteDevice(hub, deviceId);
    return undefined;
  }
  if (mode === "create" && existing)
    return fail(deviceId, BULK_ERROR.deviceAlreadyExists, `Device ${deviceId} already exists.`);
  if ((mode === "update" || mode === "updateifmatchetag") && !existing)
    return fail(deviceId, BULK_ERROR.deviceNotFound, `Device ${deviceId} not found.`);
  if (mode.endsWith("ifmatchetag") && existing && !etagMatches())
    return fail(deviceId, BULK_ERROR.preconditionFailed, "The etag does not match.");
  let record: HubDeviceRecord;
  try {
    record = deviceRecordFrom(hub, deviceId, item, existing);
  } catch (error) {
    if (error instanceof ServiceApiError) return fail(deviceId, BULK_ERROR.argumentInvalid, error.message);
    throw error;
  }
  const seed = existing ? undefined : twinSeedOf(item);
  backend.registry.upsertDevice(record, seed);
  if (existing && existing.status !== record.status) backend.registry.setStatus(hub, deviceId, record.status);
  return undefined;
}

async function bulkRegistry(backend: HubApiBackend, context: RouteContext): Promise<RouteResult> {
  const operations = parseJson(await context.body());
  if (!Array.isArray(operations) || operations.length === 0 || operations.length > MAX_BULK_OPERATIONS) {
    throw errors.badRequest(`the body must be an array of 1 to ${MAX_BULK_OPERATIONS} device operations`);
  }
  const ids = operations.map((item) => (isObject(item) && typeof item.id === "string" ? item.id : ""));
  if (new Set(ids.map((id) => id.toLowerCase())).size !== ids.length) {
    throw errors.badRequest("each operation must name a different device");
  }
  const hub = hubOfCaller(context);
  const failures = operations
    .map((item) => applyImport(backend, hub, item))
    .filter((error): error is BulkError => error !== undefined);
  return { status: 200, body: { isSuccessful: failures.length === 0, errors: failures, warnings: [] } };
}

/** Continuation tokens carry the offset into the (stable, id-ordered) result list. */
function encodeContinuation(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString("base64");
}

function decodeContinuation(token: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64").toString("utf8")) as { offset?: unknown };
    if (typeof parsed.offset === "number" && Number.isInteger(parsed.offset) && parsed.offset >= 0)
      return parsed.offset;
  } catch {
    // Falls through to the error below.
  }
  throw errors.badRequest("invalid x-ms-continuation token");
}

function headerText(context: RouteContext, name: string): string | undefined {
  const value = context.request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function queryDevices(backend: HubApiBackend, context: RouteContext): Promise<RouteResult> {
  const body = await context.json();
  if (typeof body.query !== "string" || body.query.trim() === "")
    throw errors.badRequest("query is required");
  let query;
  try {
    query = parseDeviceQuery(body.query);
  } catch (error) {
    if (error instanceof DeviceQueryError)
      throw new ServiceApiError(400, "SqlQueryInvalid", `Invalid query: ${error.message}`, 400004);
    throw error;
  }
  const sizeHeader = headerText(context, "x-ms-max-item-count");
  const pageSize = sizeHeader === undefined ? DEFAULT_PAGE_SIZE : Number(sizeHeader);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw errors.badRequest(`x-ms-max-item-count must be a number from 1 to ${MAX_PAGE_SIZE}`);
  }
  const continuation = headerText(context, "x-ms-continuation");
  const offset = continuation ? decodeContinuation(continuation) : 0;
  const hub = hubOfCaller(context);
  const matching = backend.registry
    .listDevices(hub)
    .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0))
    .flatMap((record) => {
      const twin = backend.service.getTwin(hub, record.deviceId);
      return twin ? [twinJson(twin, record, backend.service.isConnected(hub, record.deviceId))] : [];
    })
    .filter((twin) => query.matches(twin));
  const page = matching.slice(offset, offset + pageSize);
  const more = offset + pageSize < matching.length;
  return {
    status: 200,
    body: page,
    headers: {
      "x-ms-item-type": "Twin",
      ...(more ? { "x-ms-continuation": encodeContinuation(offset + pageSize) } : {}),
    },
  };
}

export function hubRegistryRoutes(backend: HubApiBackend): Route[] {
  const realm = "hub" as const;
  return [
    { method: "POST", realm, path: /^\/devices\/?$/i, handle: (c) => bulkRegistry(backend, c) },
    { method: "POST", realm, path: /^\/devices\/query\/?$/i, handle: (c) => queryDevices(backend, c) },
    {
      method: "GET",
      realm,
      path: /^\/statistics\/devices\/?$/i,
      handle: (c) => {
        const devices = backend.registry.listDevices(hubOfCaller(c));
        const enabled = devices.filter((device) => device.status === "enabled").length;
        return {
          status: 200,
          body: {
            totalDeviceCount: devices.length,
            enabledDeviceCount: enabled,
            disabledDeviceCount: devices.length - enabled,
          },
        };
      },
    },
  ];
}
