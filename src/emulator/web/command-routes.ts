// The page's commands to a device: a direct method call (Azure's CloudToDeviceMethod JSON in, its
// CloudToDeviceMethodResult {status, payload} out, as POST /twins/{id}/methods of the service API) and a
// cloud-to-device message, whose settlement the page then polls.
//   POST /ui/api/devices/{id}/methods
//   POST /ui/api/devices/{id}/messages/devicebound          -> 201, the message's state
//   GET  /ui/api/devices/{id}/messages/devicebound/{msgId}  -> the message's state
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { C2dAck, CloudToDeviceMessage } from "../hub/types.js";
import { errors, ServiceApiError } from "../service-api/errors.js";
import { methodRequestFrom } from "../service-api/hub-routes.js";
import { parseJsonObject, readBody } from "../service-api/http-io.js";
import type { C2dStateView, C2dTracker } from "./c2d-tracker.js";
import type { WebUiBackend } from "./views.js";

/** A method payload is at most 128 KB and a C2D body 64 KB; JSON escaping can double that. */
const MAX_COMMAND_BYTES = 512 * 1024;
const ACKS: readonly C2dAck[] = ["none", "positive", "negative", "full"];
/** IoT Hub's limit for ids (message id, correlation id). */
const MAX_ID_LENGTH = 128;

export interface CommandAnswer {
  status: number;
  body: unknown;
}

const deviceNotFound = (deviceId: string) =>
  new ServiceApiError(404, "DeviceNotFound", `Device ${deviceId} not found.`);

async function jsonBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  const type = request.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type)) throw errors.unsupportedMediaType();
  return parseJsonObject(await readBody(request, MAX_COMMAND_BYTES));
}

function optionalText(body: Record<string, unknown>, name: string, maxLength: number): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string" || value.length > maxLength)
    throw errors.badRequest(`${name} must be text of at most ${maxLength} characters`);
  return value;
}

/** Application properties: text values (numbers and booleans as text); the hub's own iothub-* names are reserved. */
function applicationProperties(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw errors.badRequest("properties must be an object of names and text values");
  const properties: Record<string, string> = {};
  for (const [name, raw] of Object.entries(value as Record<string, unknown>)) {
    if (name.length === 0) throw errors.badRequest("a property name is empty");
    if (/^iothub-/i.test(name)) throw errors.badRequest(`property ${name}: iothub-* names are reserved`);
    if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean")
      throw errors.badRequest(`property ${name} must be text, a number or true/false`);
    properties[name] = String(raw);
  }
  return properties;
}

/** The page's C2D request: {body, contentType, contentEncoding, properties, messageId, correlationId, ack, expiryTimeUtc}. */
export function c2dMessageFrom(
  body: Record<string, unknown>,
): CloudToDeviceMessage & { messageId: string; ack: C2dAck } {
  if (typeof body.body !== "string") throw errors.badRequest("body must be text");
  const ack = body.ack ?? "none";
  if (typeof ack !== "string" || !ACKS.includes(ack as C2dAck))
    throw errors.badRequest(`ack must be one of ${ACKS.join(", ")}`);
  const contentType = optionalText(body, "contentType", 256);
  const contentEncoding = optionalText(body, "contentEncoding", 64);
  const correlationId = optionalText(body, "correlationId", MAX_ID_LENGTH);
  const expiryTimeUtc = optionalText(body, "expiryTimeUtc", 64);
  if (expiryTimeUtc !== undefined && Number.isNaN(Date.parse(expiryTimeUtc)))
    throw errors.badRequest("expiryTimeUtc must be a date and time (ISO 8601)");
  return {
    body: body.body,
    messageId: optionalText(body, "messageId", MAX_ID_LENGTH) ?? randomUUID(),
    ack: ack as C2dAck,
    properties: applicationProperties(body.properties),
    ...(contentType !== undefined ? { contentType } : {}),
    ...(contentEncoding !== undefined ? { contentEncoding } : {}),
    ...(correlationId !== undefined ? { correlationId } : {}),
    ...(expiryTimeUtc !== undefined ? { expiryTimeUtc: new Date(expiryTimeUtc).toISOString() } : {}),
  };
}

function sendCloudToDevice(
  backend: WebUiBackend,
  tracker: C2dTracker,
  deviceId: string,
  message: ReturnType<typeof c2dMessageFrom>,
): C2dStateView {
  const hub = backend.hubHostName;
  const tracked = tracker.sent(hub, deviceId, message);
  try {
    backend.service.sendCloudToDevice(hub, deviceId, message);
  } catch (error) {
    tracker.forget(hub, deviceId, message.messageId);
    throw error;
  }
  // A device listening right now may have settled it already.
  return tracker.get(hub, deviceId, message.messageId) ?? tracked;
}

/** The answer to a command request, or undefined when `rest` is not a command path. */
export async function handleCommand(
  backend: WebUiBackend,
  tracker: C2dTracker,
  request: IncomingMessage,
  deviceId: string,
  rest: string,
): Promise<CommandAnswer | undefined> {
  const method = request.method ?? "GET";
  const onlyOne = (allowed: string) => {
    if (method !== allowed) throw errors.methodNotAllowed(method);
  };
  const knownDevice = () => {
    if (!backend.registry.getDevice(backend.hubHostName, deviceId)) throw deviceNotFound(deviceId);
  };
  if (rest === "/methods") {
    onlyOne("POST");
    const call = methodRequestFrom(await jsonBody(request));
    knownDevice();
    const result = await backend.service.invokeMethod(backend.hubHostName, deviceId, call);
    return { status: 200, body: { status: result.status, payload: result.payload ?? null } };
  }
  if (rest === "/messages/devicebound") {
    onlyOne("POST");
    const message = c2dMessageFrom(await jsonBody(request));
    knownDevice();
    return { status: 201, body: sendCloudToDevice(backend, tracker, deviceId, message) };
  }
  const state = /^\/messages\/devicebound\/([^/]+)$/.exec(rest);
  if (state?.[1]) {
    onlyOne("GET");
    let messageId: string;
    try {
      messageId = decodeURIComponent(state[1]);
    } catch {
      throw errors.badRequest("the message id is not valid percent-encoding");
    }
    const view = tracker.get(backend.hubHostName, deviceId, messageId);
    if (!view)
      throw new ServiceApiError(
        404,
        "MessageNotFound",
        `No message ${messageId} was sent to ${deviceId} from this page.`,
      );
    return { status: 200, body: view };
  }
  return undefined;
}
