// IoT Hub service API (Azure "IoT Hub service" REST API, as azure-iothub's Registry and Client call it):
// device identities, twins and direct methods. The logical hub is the one the caller's SAS token names
// (several hub host names can share the emulator), so one listener serves them all.
import { createHash, randomBytes } from "node:crypto";
import type {
  HubDeviceRecord,
  HubRegistry,
  HubService,
  MethodRequest,
  TwinDocument,
  TwinSeed,
} from "../hub/types.js";
import { errors, ServiceApiError } from "./errors.js";
import { ifMatchHeader } from "./http-io.js";
import type { Route, RouteContext, RouteResult } from "./router.js";

export interface HubApiBackend {
  registry: HubRegistry;
  service: HubService;
}

// Service-side direct method bounds (IoT Hub direct methods doc: response timeout 5..300 s, default 30;
// connect timeout 0..300 s, default 0).
const METHOD_RESPONSE_TIMEOUT = { min: 5, max: 300, default: 30 } as const;
const METHOD_CONNECT_TIMEOUT = { min: 0, max: 300, default: 0 } as const;
// IoT Hub device ids: up to 128 characters of letters, digits and - . % _ * ? ! ( ) , : = @ $ '
export const DEVICE_ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;
/** Azure shows "never" as the zero DateTime. */
const NEVER = "0001-01-01T00:00:00Z";

export const deviceNotFound = (deviceId: string) =>
  new ServiceApiError(404, "DeviceNotFound", `device ${deviceId} is not registered`, 404001);

export function hubOfCaller(context: RouteContext): string {
  return context.caller.hostName;
}

function deviceIdParam(context: RouteContext): string {
  const deviceId = context.params[0] ?? "";
  if (!DEVICE_ID.test(deviceId)) throw errors.badRequest("invalid device id");
  return deviceId;
}

/** A stable etag for a device identity: it changes when the identity changes. */
export function deviceEtag(record: HubDeviceRecord): string {
  const digest = createHash("sha256").update(JSON.stringify(record)).digest("hex").slice(0, 16);
  return Buffer.from(digest).toString("base64");
}

/** Azure's Device JSON (GET /devices/{id}). */
export function deviceJson(record: HubDeviceRecord, connected: boolean): Record<string, unknown> {
  const auth = record.authentication;
  return {
    deviceId: record.deviceId,
    generationId: createHash("sha256").update(record.deviceId).digest("hex").slice(0, 18),
    etag: deviceEtag(record),
    connectionState: connected ? "Connected" : "Disconnected",
    status: record.status,
    statusReason: null,
    connectionStateUpdatedTime: NEVER,
    statusUpdatedTime: NEVER,
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authentication: {
      symmetricKey: {
        primaryKey: auth.type === "sas" ? auth.symmetricKey.primaryKey : null,
        secondaryKey: auth.type === "sas" ? (auth.symmetricKey.secondaryKey ?? null) : null,
      },
      x509Thumbprint: {
        primaryThumbprint: auth.type === "selfSigned" ? auth.x509Thumbprint.primaryThumbprint : null,
        secondaryThumbprint:
          auth.type === "selfSigned" ? (auth.x509Thumbprint.secondaryThumbprint ?? null) : null,
      },
      type: auth.type,
    },
    capabilities: { iotEdge: record.capabilities?.iotEdge === true },
    ...(record.modelId ? { modelId: record.modelId } : {}),
  };
}

/** Azure's Twin JSON (GET /twins/{id}): the hub's twin plus the identity fields Azure adds. */
export function twinJson(
  twin: TwinDocument,
  record: HubDeviceRecord | undefined,
  connected: boolean,
): Record<string, unknown> {
  return {
    deviceId: twin.deviceId,
    etag: twin.etag,
    deviceEtag: record ? deviceEtag(record) : undefined,
    status: twin.status,
    statusUpdateTime: NEVER,
    connectionState: connected ? "Connected" : "Disconnected",
    lastActivityTime: NEVER,
    cloudToDeviceMessageCount: 0,
    authenticationType: record?.authentication.type ?? "sas",
    x509Thumbprint: {
      primaryThumbprint:
        record?.authentication.type === "selfSigned"
          ? record.authentication.x509Thumbprint.primaryThumbprint
          : null,
      secondaryThumbprint: null,
    },
    ...(twin.modelId ? { modelId: twin.modelId } : {}),
    version: twin.version,
    tags: twin.tags,
    properties: twin.properties,
    capabilities: { iotEdge: record?.capabilities?.iotEdge === true },
  };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A section given as null: every current member removed (as a patch), or emptied (as a replacement). */
function clearedSection(
  current: Record<string, unknown> | undefined,
  asPatch: boolean,
): Record<string, unknown> {
  if (!asPatch) return {};
  return Object.fromEntries(
    Object.keys(current ?? {})
      .filter((name) => !name.startsWith("$"))
      .map((name) => [name, null]),
  );
}

/**
 * The writable part of a twin a service may send: tags and desired properties. Azure takes null for either
 * as "clear it all"; against `current` that becomes a patch nulling each member, so devices get it too.
 */
function twinSeedFrom(
  body: Record<string, unknown>,
  current: TwinDocument | undefined,
  asPatch: boolean,
): TwinSeed {
  const seed: TwinSeed = {};
  if (body.tags === null) seed.tags = clearedSection(current?.tags, asPatch);
  else if (body.tags !== undefined) {
    if (!isObject(body.tags)) throw errors.badRequest("tags must be an object or null");
    seed.tags = body.tags;
  }
  if (body.properties !== undefined && body.properties !== null) {
    if (!isObject(body.properties)) throw errors.badRequest("properties must be an object");
    if (body.properties.reported !== undefined) {
      throw errors.badRequest("reported properties can only be changed by the device");
    }
    const desired = body.properties.desired;
    if (desired === null) {
      seed.properties = { desired: clearedSection(current?.properties.desired, asPatch) };
    } else if (desired !== undefined) {
      if (!isObject(desired)) throw errors.badRequest("properties.desired must be an object or null");
      seed.properties = { desired };
    }
  }
  return seed;
}

function secondsOption(
  value: unknown,
  bounds: { min: number; max: number; default: number },
  name: string,
): number {
  if (value === undefined || value === null) return bounds.default;
  if (typeof value !== "number" || !Number.isFinite(value) || value < bounds.min || value > bounds.max) {
    throw errors.badRequest(`${name} must be a number from ${bounds.min} to ${bounds.max}`);
  }
  return value;
}

/**
 * A direct method call as Azure's CloudToDeviceMethod JSON describes it ({methodName, payload,
 * responseTimeoutInSeconds, connectTimeoutInSeconds}), checked against the service's bounds; throws 400.
 */
export function methodRequestFrom(body: Record<string, unknown>): MethodRequest {
  if (typeof body.methodName !== "string" || body.methodName.length === 0 || body.methodName.length > 128) {
    throw errors.badRequest("methodName is required (1 to 128 characters)");
  }
  return {
    methodName: body.methodName,
    payload: body.payload,
    responseTimeoutInSeconds: secondsOption(
      body.responseTimeoutInSeconds ?? body.timeoutInSeconds,
      METHOD_RESPONSE_TIMEOUT,
      "responseTimeoutInSeconds",
    ),
    connectTimeoutInSeconds: secondsOption(
      body.connectTimeoutInSeconds,
      METHOD_CONNECT_TIMEOUT,
      "connectTimeoutInSeconds",
    ),
  };
}

async function invokeMethod(backend: HubApiBackend, context: RouteContext): Promise<RouteResult> {
  const deviceId = deviceIdParam(context);
  const request = methodRequestFrom(await context.json());
  const hub = hubOfCaller(context);
  if (!backend.registry.getDevice(hub, deviceId)) throw deviceNotFound(deviceId);
  const result = await backend.service.invokeMethod(hub, deviceId, request);
  return { status: 200, body: { status: result.status, payload: result.payload ?? null } };
}

function newDeviceKey(): string {
  return randomBytes(32).toString("base64");
}

/**
 * The identity a Device JSON asks for (PUT /devices/{id}, bulk import): what the body leaves out is kept from
 * `existing`, and Azure generates SAS keys when none are given. Throws ServiceApiError 400.
 */
export function deviceRecordFrom(
  hub: string,
  deviceId: string,
  body: Record<string, unknown>,
  existing: HubDeviceRecord | undefined,
): HubDeviceRecord {
  const status = body.status ?? existing?.status ?? "enabled";
  if (status !== "enabled" && status !== "disabled")
    throw errors.badRequest("status must be enabled or disabled");
  const auth = isObject(body.authentication) ? body.authentication : {};
  const type = (auth.type as string | undefined) ?? existing?.authentication.type ?? "sas";
  let authentication: HubDeviceRecord["authentication"];
  if (type === "sas") {
    const given = isObject(auth.symmetricKey) ? auth.symmetricKey : {};
    const previous =
      existing?.authentication.type === "sas" ? existing.authentication.symmetricKey : undefined;
    const primaryKey =
      typeof given.primaryKey === "string" && given.primaryKey ? given.primaryKey : undefined;
    const secondaryKey =
      typeof given.secondaryKey === "string" && given.secondaryKey ? given.secondaryKey : undefined;
    for (const key of [primaryKey, secondaryKey]) {
      if (
        key !== undefined &&
        (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, "base64").length < 16)
      ) {
        throw errors.badRequest("symmetric keys must be base64 of 16 to 64 bytes");
      }
    }
    authentication = {
      type: "sas",
      symmetricKey: {
        primaryKey: primaryKey ?? previous?.primaryKey ?? newDeviceKey(),
        secondaryKey: secondaryKey ?? previous?.secondaryKey ?? newDeviceKey(),
      },
    };
  } else if (type === "selfSigned") {
    const thumbprints = isObject(auth.x509Thumbprint) ? auth.x509Thumbprint : {};
    if (
      typeof thumbprints.primaryThumbprint !== "string" ||
      !/^[0-9A-Fa-f]{40,64}$/.test(thumbprints.primaryThumbprint)
    ) {
      throw errors.badRequest("selfSigned authentication needs x509Thumbprint.primaryThumbprint (hex)");
    }
    const secondary =
      typeof thumbprints.secondaryThumbprint === "string" && thumbprints.secondaryThumbprint
        ? { secondaryThumbprint: thumbprints.secondaryThumbprint.toUpperCase() }
        : {};
    authentication = {
      type: "selfSigned",
      x509Thumbprint: { primaryThumbprint: thumbprints.primaryThumbprint.toUpperCase(), ...secondary },
    };
  } else if (type === "certificateAuthority") {
    authentication = { type: "certificateAuthority" };
  } else {
    throw errors.badRequest("authentication.type must be sas, selfSigned or certificateAuthority");
  }
  const capabilities = isObject(body.capabilities) ? body.capabilities : undefined;
  if (capabilities?.iotEdge !== undefined && typeof capabilities.iotEdge !== "boolean")
    throw errors.badRequest("capabilities.iotEdge must be true or false");
  const iotEdge = capabilities?.iotEdge ?? existing?.capabilities?.iotEdge === true;
  return {
    hubHostName: hub,
    deviceId,
    status,
    authentication,
    ...(typeof body.modelId === "string" && body.modelId ? { modelId: body.modelId } : {}),
    ...(iotEdge ? { capabilities: { iotEdge: true } } : {}),
  };
}

/** PUT /devices/{id}: creates or updates an identity. */
async function putDevice(backend: HubApiBackend, context: RouteContext): Promise<RouteResult> {
  const deviceId = deviceIdParam(context);
  const body = await context.json();
  if (body.deviceId !== undefined && body.deviceId !== deviceId) {
    throw errors.badRequest("deviceId in the body does not match the path");
  }
  const hub = hubOfCaller(context);
  const existing = backend.registry.getDevice(hub, deviceId);
  const wantedEtag = ifMatchHeader(context.request);
  if (wantedEtag !== undefined && existing && deviceEtag(existing) !== wantedEtag)
    throw errors.preconditionFailed();
  const record = deviceRecordFrom(hub, deviceId, body, existing);
  const status = record.status;
  backend.registry.upsertDevice(record);
  if (existing && existing.status !== status) backend.registry.setStatus(hub, deviceId, status);
  const stored = backend.registry.getDevice(hub, deviceId) ?? record;
  return { status: 200, body: deviceJson(stored, backend.service.isConnected(hub, deviceId)) };
}

export function hubRoutes(backend: HubApiBackend): Route[] {
  const realm = "hub" as const;
  const twinOf = (context: RouteContext, deviceId: string): RouteResult => {
    const hub = hubOfCaller(context);
    const twin = backend.service.getTwin(hub, deviceId);
    if (!twin) throw deviceNotFound(deviceId);
    const record = backend.registry.getDevice(hub, deviceId);
    return { status: 200, body: twinJson(twin, record, backend.service.isConnected(hub, deviceId)) };
  };
  return [
    {
      method: "GET",
      realm,
      path: /^\/devices\/?$/i,
      handle: (c) => {
        const hub = hubOfCaller(c);
        const devices = backend.registry
          .listDevices(hub)
          .map((record) => deviceJson(record, backend.service.isConnected(hub, record.deviceId)));
        return { status: 200, body: devices };
      },
    },
    {
      method: "GET",
      realm,
      path: /^\/devices\/([^/]+)$/i,
      handle: (c) => {
        const deviceId = deviceIdParam(c);
        const hub = hubOfCaller(c);
        const record = backend.registry.getDevice(hub, deviceId);
        if (!record) throw deviceNotFound(deviceId);
        return { status: 200, body: deviceJson(record, backend.service.isConnected(hub, deviceId)) };
      },
    },
    { method: "PUT", realm, path: /^\/devices\/([^/]+)$/i, handle: (c) => putDevice(backend, c) },
    {
      method: "DELETE",
      realm,
      path: /^\/devices\/([^/]+)$/i,
      handle: (c) => {
        const deviceId = deviceIdParam(c);
        const hub = hubOfCaller(c);
        const existing = backend.registry.getDevice(hub, deviceId);
        if (!existing) throw deviceNotFound(deviceId);
        const wantedEtag = ifMatchHeader(c.request);
        if (wantedEtag !== undefined && deviceEtag(existing) !== wantedEtag)
          throw errors.preconditionFailed();
        backend.registry.deleteDevice(hub, deviceId);
        return { status: 204 };
      },
    },
    { method: "GET", realm, path: /^\/twins\/([^/]+)$/i, handle: (c) => twinOf(c, deviceIdParam(c)) },
    {
      method: "PATCH",
      realm,
      path: /^\/twins\/([^/]+)$/i,
      handle: async (c) => {
        const deviceId = deviceIdParam(c);
        const hub = hubOfCaller(c);
        const seed = twinSeedFrom(await c.json(), backend.service.getTwin(hub, deviceId), true);
        backend.service.updateTwin(hub, deviceId, seed, ifMatchHeader(c.request));
        return twinOf(c, deviceId);
      },
    },
    {
      method: "PUT",
      realm,
      path: /^\/twins\/([^/]+)$/i,
      handle: async (c) => {
        const deviceId = deviceIdParam(c);
        const seed = twinSeedFrom(await c.json(), undefined, false);
        backend.service.replaceTwin(hubOfCaller(c), deviceId, seed, ifMatchHeader(c.request));
        return twinOf(c, deviceId);
      },
    },
    {
      method: "POST",
      realm,
      path: /^\/twins\/([^/]+)\/methods\/?$/i,
      handle: (c) => invokeMethod(backend, c),
    },
  ];
}
