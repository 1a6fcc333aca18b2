// Validation of a CBS put-token request (docs/hub-amqp-protocol.md §2.1-§2.3): token type, SAS syntax, audience,
// hub host name, device existence and status, expiry, HMAC signature with the device's primary or secondary key.
import { parseSasToken, sasSignatureMatches } from "../../common/sas.js";
import type { HubDeviceRecord } from "./types.js";

/** Token types the SDKs put (servicebus.windows.net for the Node SDK, azure-devices.net for some others). */
const SAS_TOKEN_TYPES = new Set(["servicebus.windows.net:sastoken", "azure-devices.net:sastoken"]);

/** Resource of a device-scoped token: {host[:port]}/devices/{deviceId}. Device ids never contain '/'. */
const DEVICE_RESOURCE = /^([^/]+)\/devices\/([^/]+)$/;

export interface PutTokenRequest {
  operation: unknown;
  type: unknown;
  /** The audience the client named (the still-encoded sr). */
  name: unknown;
  token: unknown;
}

export type PutTokenResult =
  | { status: 200; description: "OK"; hubHostName: string; deviceId: string; expiresAtMs: number }
  | { status: 400 | 401 | 404; description: string };

export interface PutTokenContext {
  /** Logical hub names this listener serves. */
  hostNames: readonly string[];
  /** The listener's TCP port (the SDK puts it into the audience when HostName carries it). */
  port: number;
  findDevice(hubHostName: string, deviceId: string): HubDeviceRecord | undefined;
  nowMs: number;
}

/** The served hub name an audience host ("name" or "name:port") stands for, if any. */
export function servedHubName(
  host: string,
  context: Pick<PutTokenContext, "hostNames" | "port">,
): string | undefined {
  const lower = host.toLowerCase();
  const exact = context.hostNames.find((name) => name.toLowerCase() === lower);
  if (exact) return exact;
  const portMatch = /^(.*):(\d+)$/.exec(lower);
  if (!portMatch || Number(portMatch[2]) !== context.port) return undefined;
  return context.hostNames.find((name) => name.toLowerCase() === portMatch[1]);
}

function decodeOrUndefined(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

export function checkPutToken(request: PutTokenRequest, context: PutTokenContext): PutTokenResult {
  if (request.operation !== "put-token") return { status: 400, description: "Unsupported CBS operation." };
  if (typeof request.type !== "string" || !SAS_TOKEN_TYPES.has(request.type)) {
    return { status: 400, description: "Unsupported token type." };
  }
  if (typeof request.token !== "string") return { status: 400, description: "The token must be a string." };
  const sas = parseSasToken(request.token);
  if (!sas) return { status: 401, description: "Malformed SharedAccessSignature token." };
  if (sas.keyName !== undefined) {
    return {
      status: 401,
      description: "Shared access policy tokens are not accepted for device connections.",
    };
  }
  const audience = typeof request.name === "string" ? decodeOrUndefined(request.name) : undefined;
  if (audience !== sas.resource)
    return { status: 401, description: "The token audience does not match the request." };
  const resource = DEVICE_RESOURCE.exec(sas.resource);
  if (!resource?.[1] || !resource[2])
    return { status: 401, description: "The token is not scoped to a device." };
  const hubHostName = servedHubName(resource[1], context);
  if (!hubHostName)
    return { status: 401, description: `The token audience ${resource[1]} is not this IoT hub.` };
  const deviceId = resource[2];
  const device = context.findDevice(hubHostName, deviceId);
  if (!device) return { status: 404, description: `Device ${deviceId} not found.` };
  if (device.status !== "enabled") return { status: 401, description: `Device ${deviceId} is disabled.` };
  if (device.authentication.type !== "sas") {
    return { status: 401, description: `Device ${deviceId} does not use shared access keys.` };
  }
  const expiresAtMs = sas.expiry * 1000;
  if (expiresAtMs <= context.nowMs) return { status: 401, description: "The token has expired." };
  const { primaryKey, secondaryKey } = device.authentication.symmetricKey;
  const keys = [primaryKey, secondaryKey].filter((key): key is string => key !== undefined);
  if (!keys.some((key) => sasSignatureMatches(sas, Buffer.from(key, "base64")))) {
    return { status: 401, description: "The token signature is invalid." };
  }
  return { status: 200, description: "OK", hubHostName: device.hubHostName, deviceId, expiresAtMs };
}

export interface ServicePutTokenContext {
  hostNames: readonly string[];
  port: number;
  policies: readonly { keyName: string; key: string }[];
  nowMs: number;
}

export type ServicePutTokenResult =
  | { status: 200; description: "OK"; hubHostName: string; expiresAtMs: number }
  | { status: 400 | 401; description: string };

/** A service-side put-token: a hub-scoped token (sr = the hub's host name) signed with a shared access policy. */
export function checkServicePutToken(
  request: PutTokenRequest,
  context: ServicePutTokenContext,
): ServicePutTokenResult {
  if (request.operation !== "put-token") return { status: 400, description: "Unsupported CBS operation." };
  if (typeof request.type !== "string" || !SAS_TOKEN_TYPES.has(request.type)) {
    return { status: 400, description: "Unsupported token type." };
  }
  if (typeof request.token !== "string") return { status: 400, description: "The token must be a string." };
  const sas = parseSasToken(request.token);
  if (!sas?.keyName) return { status: 401, description: "Malformed SharedAccessSignature token." };
  const audience = typeof request.name === "string" ? decodeOrUndefined(request.name) : undefined;
  if (audience !== sas.resource)
    return { status: 401, description: "The token audience does not match the request." };
  const hubHostName = servedHubName(sas.resource, context);
  if (!hubHostName)
    return { status: 401, description: `The token audience ${sas.resource} is not this IoT hub.` };
  const policy = context.policies.find((candidate) => candidate.keyName === sas.keyName);
  if (!policy) return { status: 401, description: `Unknown shared access policy ${sas.keyName}.` };
  const expiresAtMs = sas.expiry * 1000;
  if (expiresAtMs <= context.nowMs) return { status: 401, description: "The token has expired." };
  if (!sasSignatureMatches(sas, Buffer.from(policy.key, "base64")))
    return { status: 401, description: "The token signature is invalid." };
  return { status: 200, description: "OK", hubHostName, expiresAtMs };
}
