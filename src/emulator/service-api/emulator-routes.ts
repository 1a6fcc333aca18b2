// Emulator-only service routes (no Azure equivalent): recent telemetry per device, a live event stream,
// sending cloud-to-device messages over REST, and fault injection for tests.
import type { C2dAck, FaultLink, HubFaults, HubService } from "../hub/types.js";
import { errors, ServiceApiError } from "./errors.js";
import { streamHubEvents } from "./event-stream.js";
import { telemetryJson } from "./telemetry-json.js";
import type { Route, RouteContext, RouteResult } from "./router.js";

/** The DPS side's fault switches, by name (POST /emulator/faults/dps/{name} with a JSON body). */
export type DpsFaultHandlers = Record<string, (body: Record<string, unknown>) => unknown>;

export interface EmulatorApiBackend {
  service: HubService;
  faults: HubFaults;
  /** The hub used when a caller authenticated with the DPS key names none (?hub=). */
  defaultHubHostName: string;
  dpsFaults?: DpsFaultHandlers;
}

const RECENT_TELEMETRY_DEFAULT = 100;
const RECENT_TELEMETRY_MAX = 1000;
/** IoT Hub C2D message limit (quotas doc): 64 KB. */
export const C2D_MAX_BYTES = 64 * 1024;
const FAULT_LINKS: readonly FaultLink[] = ["telemetry", "twin", "c2d", "methods"];

function hubFor(context: RouteContext, backend: EmulatorApiBackend): string {
  const asked = context.query.get("hub");
  if (asked) return asked;
  return context.callerRealm === "hub" ? context.caller.hostName : backend.defaultHubHostName;
}

function limitParam(context: RouteContext): number {
  const raw = context.query.get("limit");
  if (raw === null) return RECENT_TELEMETRY_DEFAULT;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > RECENT_TELEMETRY_MAX) {
    throw errors.badRequest(`limit must be an integer from 1 to ${RECENT_TELEMETRY_MAX}`);
  }
  return limit;
}

function countField(body: Record<string, unknown>, name: string, max: number): number {
  const value = body[name];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw errors.badRequest(`${name} must be an integer from 0 to ${max}`);
  }
  return value;
}

function deviceField(body: Record<string, unknown>): string {
  if (typeof body.deviceId !== "string" || body.deviceId.length === 0)
    throw errors.badRequest("deviceId is required");
  return body.deviceId;
}

/** Application properties from iothub-app-* headers, as IoT Hub's HTTP APIs carry them. */
function appPropertiesFrom(headers: RouteContext["request"]["headers"]): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith("iothub-app-") && typeof value === "string") properties[name.slice(11)] = value;
  }
  return properties;
}

async function sendCloudToDevice(backend: EmulatorApiBackend, context: RouteContext): Promise<RouteResult> {
  const deviceId = context.params[0] ?? "";
  const body = await context.body();
  if (body.length > C2D_MAX_BYTES) {
    throw new ServiceApiError(
      413,
      "MessageTooLarge",
      `a cloud-to-device message is limited to ${C2D_MAX_BYTES} bytes`,
      413001,
    );
  }
  const header = (name: string) => {
    const value = context.request.headers[name];
    return typeof value === "string" && value.length > 0 ? value : undefined;
  };
  const messageId = header("iothub-messageid");
  const correlationId = header("iothub-correlationid");
  const expiryTimeUtc = header("iothub-expiry");
  const contentType = header("iothub-contenttype");
  const contentEncoding = header("iothub-contentencoding");
  const ack = header("iothub-ack");
  backend.service.sendCloudToDevice(hubFor(context, backend), deviceId, {
    body,
    properties: appPropertiesFrom(context.request.headers),
    ...(messageId ? { messageId } : {}),
    ...(correlationId ? { correlationId } : {}),
    ...(expiryTimeUtc ? { expiryTimeUtc } : {}),
    ...(contentType ? { contentType } : {}),
    ...(contentEncoding ? { contentEncoding } : {}),
    ...(ack ? { ack: ack as C2dAck } : {}),
  });
  return { status: 204 };
}

async function applyHubFault(backend: EmulatorApiBackend, context: RouteContext): Promise<RouteResult> {
  const fault = (context.params[0] ?? "").toLowerCase();
  const body = await context.json();
  const hub = hubFor(context, backend);
  let applied: boolean;
  switch (fault) {
    case "drop-connection":
      applied = backend.faults.dropConnection(hub, deviceField(body));
      break;
    case "detach-link": {
      const link = body.link as FaultLink;
      if (!FAULT_LINKS.includes(link))
        throw errors.badRequest(`link must be one of ${FAULT_LINKS.join(", ")}`);
      applied = backend.faults.detachLink(hub, deviceField(body), link);
      break;
    }
    case "reject-tokens":
      backend.faults.rejectNextTokens(countField(body, "count", 1_000_000));
      applied = true;
      break;
    case "throttle":
      backend.faults.throttleNext(countField(body, "count", 1_000_000));
      applied = true;
      break;
    case "quota-exceeded":
      backend.faults.exceedQuotaNext(countField(body, "count", 1_000_000));
      applied = true;
      break;
    case "throttle-twin-gets":
      backend.faults.throttleTwinGetsNext(countField(body, "count", 1_000_000));
      applied = true;
      break;
    case "delay-acks":
      backend.faults.delayAcks(countField(body, "ms", 600_000));
      applied = true;
      break;
    default:
      throw errors.notFound(`no hub fault named ${fault}`);
  }
  return { status: 200, body: { fault, applied } };
}

async function applyDpsFault(backend: EmulatorApiBackend, context: RouteContext): Promise<RouteResult> {
  const fault = context.params[0] ?? "";
  const handler = backend.dpsFaults
    ? Object.entries(backend.dpsFaults).find(([name]) => name === fault)
    : undefined;
  if (!handler) throw errors.notFound(`no DPS fault named ${fault}`);
  const result = await handler[1](await context.json());
  return { status: 200, body: { fault, applied: result ?? true } };
}

export function emulatorRoutes(backend: EmulatorApiBackend): Route[] {
  const realm = "emulator" as const;
  return [
    {
      method: "GET",
      realm,
      path: /^\/emulator\/devices\/([^/]+)\/telemetry\/?$/i,
      handle: (c) => {
        const records = backend.service.recentTelemetry(hubFor(c, backend), c.params[0] ?? "", limitParam(c));
        return { status: 200, body: records.map(telemetryJson) };
      },
    },
    {
      method: "GET",
      realm,
      path: /^\/emulator\/devices\/([^/]+)\/telemetry\/stream\/?$/i,
      handle: (c) => {
        streamHubEvents(c.response, backend.service, {
          hubHostName: hubFor(c, backend),
          deviceId: c.params[0] ?? "",
        });
        return "streaming";
      },
    },
    {
      method: "GET",
      realm,
      path: /^\/emulator\/events\/?$/i,
      handle: (c) => {
        streamHubEvents(c.response, backend.service, { hubHostName: hubFor(c, backend) });
        return "streaming";
      },
    },
    {
      method: "POST",
      realm,
      path: /^\/emulator\/devices\/([^/]+)\/messages\/devicebound\/?$/i,
      handle: (c) => sendCloudToDevice(backend, c),
    },
    {
      method: "POST",
      realm,
      path: /^\/emulator\/faults\/hub\/([^/]+)$/i,
      handle: (c) => applyHubFault(backend, c),
    },
    {
      method: "POST",
      realm,
      path: /^\/emulator\/faults\/dps\/([^/]+)$/i,
      handle: (c) => applyDpsFault(backend, c),
    },
  ];
}
