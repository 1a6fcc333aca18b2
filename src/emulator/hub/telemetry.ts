// Device-to-cloud messages: IoT Hub's size accounting and the record the service side sees
// (docs/hub-amqp-protocol.md §3.2, §3.5, §7).
import type { Message } from "rhea";
import { bodyBytes, messageIdText } from "./amqp-body.js";
import type { TelemetryRecord } from "./types.js";

/** D2C message size limit: 256 KB of body + system property values + application property names and values. */
export const MAX_TELEMETRY_BYTES = 256 * 1024;

const CREATION_TIME_PROPERTY = "iothub-creation-time-utc";

/** How many telemetry records the service keeps for recentTelemetry(). */
export const TELEMETRY_BUFFER_SIZE = 1000;

export function propertyText(value: unknown): string {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  if (value instanceof Date) return value.toISOString();
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  return JSON.stringify(value) ?? "";
}

/** The size IoT Hub counts against the 256 KB limit. */
export function telemetrySize(message: Message): number {
  let size = bodyBytes(message.body).length;
  const systemValues: unknown[] = [
    messageIdText(message.message_id),
    messageIdText(message.correlation_id),
    message.content_type,
    message.content_encoding,
    message.user_id,
    message.to,
  ];
  for (const value of systemValues)
    if (value !== undefined && value !== null) size += Buffer.byteLength(propertyText(value));
  for (const [name, value] of Object.entries(message.application_properties ?? {})) {
    size += Buffer.byteLength(name) + Buffer.byteLength(propertyText(value));
  }
  return size;
}

export interface TelemetryOrigin {
  hubHostName: string;
  deviceId: string;
  authMethod: "sas" | "x509";
  generationId: string;
  enqueuedAt: Date;
}

/** The service-side view of a device message, with the system properties IoT Hub stamps on it. */
export function telemetryRecord(message: Message, origin: TelemetryOrigin): TelemetryRecord {
  const properties: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.application_properties ?? {}))
    properties[name] = propertyText(value);
  // The C SDK sends the creation time as this application property; IoT Hub lists it as a system property.
  const creationTimeProperty = properties[CREATION_TIME_PROPERTY];
  delete properties[CREATION_TIME_PROPERTY];
  const annotations = (message.message_annotations ?? {}) as Record<string, unknown>;
  const enqueuedTimeUtc = origin.enqueuedAt.toISOString();
  const optional: Record<string, string | undefined> = {
    messageId: messageIdText(message.message_id),
    correlationId: messageIdText(message.correlation_id),
    contentType: message.content_type,
    contentEncoding: message.content_encoding,
    userId: message.user_id === undefined ? undefined : propertyText(message.user_id),
    component: annotations["dt-subject"] === undefined ? undefined : propertyText(annotations["dt-subject"]),
    "iothub-interface-id":
      annotations["iothub-interface-id"] === undefined
        ? undefined
        : propertyText(annotations["iothub-interface-id"]),
    "iothub-expiry":
      message.absolute_expiry_time === undefined ? undefined : propertyText(message.absolute_expiry_time),
    [CREATION_TIME_PROPERTY]:
      message.creation_time === undefined ? creationTimeProperty : propertyText(message.creation_time),
  };
  const systemProperties: TelemetryRecord["systemProperties"] = {
    "iothub-connection-device-id": origin.deviceId,
    "iothub-connection-auth-method": JSON.stringify({
      scope: "device",
      type: origin.authMethod,
      issuer: "iothub",
    }),
    "iothub-connection-auth-generation-id": origin.generationId,
    "iothub-enqueuedtime": enqueuedTimeUtc,
  };
  for (const [name, value] of Object.entries(optional))
    if (value !== undefined) systemProperties[name] = value;
  return {
    hubHostName: origin.hubHostName,
    deviceId: origin.deviceId,
    enqueuedTimeUtc,
    body: bodyBytes(message.body),
    properties,
    systemProperties,
  };
}

/** Bounded, newest-last buffer of telemetry records. */
export class TelemetryLog {
  private readonly records: TelemetryRecord[] = [];

  constructor(private readonly capacity = TELEMETRY_BUFFER_SIZE) {}

  add(record: TelemetryRecord): void {
    this.records.push(record);
    if (this.records.length > this.capacity) this.records.splice(0, this.records.length - this.capacity);
  }

  recent(hubHostName: string, deviceId?: string, limit = this.capacity): TelemetryRecord[] {
    const hub = hubHostName.toLowerCase();
    const matching = this.records.filter(
      (record) =>
        record.hubHostName.toLowerCase() === hub && (deviceId === undefined || record.deviceId === deviceId),
    );
    return limit <= 0 ? [] : matching.slice(-limit);
  }
}
