// IoT Hub's MQTT topic names (docs/hub-mqtt-protocol.md §3-§6): what a device may publish and subscribe to,
// and the topics the hub publishes on. Pure functions, no I/O.

import type { Message } from "rhea";

/** What a device publishes: telemetry, a twin request, or a method response. */
export type DevicePublish =
  | { kind: "telemetry"; deviceId: string; properties: [string, string][] }
  | { kind: "twin-get"; rid: string }
  | { kind: "twin-reported"; rid: string }
  | { kind: "method-response"; rid: string; status: number }
  | { kind: "unknown" };

/** The topic filters a device may subscribe to. */
export type DeviceSubscription = "c2d" | "twin-responses" | "desired" | "methods";

const TELEMETRY = /^devices\/([^/]+)\/messages\/events(?:\/(.*))?$/;
const TWIN_REQUEST = /^\$iothub\/twin\/(GET|PATCH\/properties\/reported)\/\?(.*)$/;
const METHOD_RESPONSE = /^\$iothub\/methods\/res\/(\d{3})\/\?(.*)$/;

/** Decodes one percent-encoded name or value; undefined when the encoding is broken. */
function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** "a=1&b=2" into ordered pairs; a name without "=" has the empty value. Undefined on broken encoding. */
export function parsePropertyBag(bag: string): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  for (const part of bag.split("&")) {
    if (part.length === 0) continue;
    const at = part.indexOf("=");
    const name = decode(at < 0 ? part : part.slice(0, at));
    const value = decode(at < 0 ? "" : part.slice(at + 1));
    if (name === undefined || value === undefined) return undefined;
    pairs.push([name, value]);
  }
  return pairs;
}

/** The $rid of a request's query string; undefined when it has none. */
function requestId(query: string): string | undefined {
  const rid = parsePropertyBag(query)?.find(([name]) => name === "$rid")?.[1];
  return rid !== undefined && rid.length > 0 ? rid : undefined;
}

export function parseDevicePublish(topic: string): DevicePublish {
  const telemetry = TELEMETRY.exec(topic);
  if (telemetry?.[1]) {
    const deviceId = decode(telemetry[1]);
    const bag = (telemetry[2] ?? "").replace(/\/$/, "");
    const properties = parsePropertyBag(bag);
    if (deviceId === undefined || !properties || bag.includes("/")) return { kind: "unknown" };
    return { kind: "telemetry", deviceId, properties };
  }
  const twin = TWIN_REQUEST.exec(topic);
  if (twin?.[1] && twin[2] !== undefined) {
    const rid = requestId(twin[2]);
    if (!rid) return { kind: "unknown" };
    return twin[1] === "GET" ? { kind: "twin-get", rid } : { kind: "twin-reported", rid };
  }
  const method = METHOD_RESPONSE.exec(topic);
  if (method?.[1] && method[2] !== undefined) {
    const rid = requestId(method[2]);
    if (!rid) return { kind: "unknown" };
    return { kind: "method-response", rid, status: Number(method[1]) };
  }
  return { kind: "unknown" };
}

/** Which of the hub's topics a subscription filter stands for, for the connected device `deviceId`. */
export function parseSubscription(filter: string, deviceId: string): DeviceSubscription | undefined {
  if (
    filter === `devices/${deviceId}/messages/devicebound/#` ||
    filter === `devices/${encode(deviceId)}/messages/devicebound/#`
  ) {
    return "c2d";
  }
  switch (filter) {
    case "$iothub/twin/res/#":
      return "twin-responses";
    case "$iothub/twin/PATCH/properties/desired/#":
      return "desired";
    case "$iothub/methods/POST/#":
      return "methods";
    default:
      return undefined;
  }
}

/** Percent-encodes like encodeURIComponent, plus the characters the topic grammar reserves. */
function encode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export function formatPropertyBag(pairs: [string, string][]): string {
  return pairs.map(([name, value]) => `${encode(name)}=${encode(value)}`).join("&");
}

export function twinResponseTopic(status: number, rid: string, version?: number): string {
  const versionPart = version === undefined ? "" : `&$version=${version}`;
  return `$iothub/twin/res/${status}/?$rid=${encode(rid)}${versionPart}`;
}

export function desiredPatchTopic(version: number): string {
  return `$iothub/twin/PATCH/properties/desired/?$version=${version}`;
}

export function methodRequestTopic(methodName: string, rid: string): string {
  // The SDKs take the method name from the topic as it stands (no decoding).
  return `$iothub/methods/POST/${methodName}/?$rid=${encode(rid)}`;
}

/** The property bag is one topic level: every "/" in it is percent-encoded. */
export function c2dTopic(deviceId: string, properties: [string, string][]): string {
  return `devices/${encode(deviceId)}/messages/devicebound/${formatPropertyBag(properties)}`;
}

/** MQTT system property names ($.mid, ...) and the AMQP message fields IoT Hub maps them to. */
const SYSTEM_FIELDS: Record<string, keyof Message> = {
  "$.mid": "message_id",
  "$.cid": "correlation_id",
  "$.uid": "user_id",
  "$.to": "to",
  "$.ct": "content_type",
  "$.ce": "content_encoding",
  "$.exp": "absolute_expiry_time",
  "$.ctime": "creation_time",
};
const SYSTEM_ANNOTATIONS: Record<string, string> = {
  "$.sub": "dt-subject",
  "$.ifid": "iothub-interface-id",
};

/** A telemetry publish as the AMQP message IoT Hub makes of it; unknown "$." system properties are dropped. */
export function telemetryMessage(properties: [string, string][], payload: Buffer): Message {
  const message: Message = { body: payload };
  const application: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  for (const [name, value] of properties) {
    const field = SYSTEM_FIELDS[name];
    const annotation = SYSTEM_ANNOTATIONS[name];
    if (field) (message as unknown as Record<string, unknown>)[field] = value;
    else if (annotation) annotations[annotation] = value;
    else if (!name.startsWith("$.")) application[name] = value;
  }
  if (Object.keys(application).length > 0) message.application_properties = application;
  if (Object.keys(annotations).length > 0) message.message_annotations = annotations;
  return message;
}
