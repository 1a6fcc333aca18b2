// Maps what a flow hands us (payload + options) to an azure-iot-device Message, the way IoT Hub consumers
// expect it: objects as UTF-8 JSON with contentType/contentEncoding set (so routing queries can read the
// body), strings and Buffers as they are, application properties as strings.
import { randomUUID } from "node:crypto";
import { Message } from "azure-iot-device";
import { ValidationError } from "./errors.js";
import { checkTelemetrySize, telemetryBody, validateMessageId } from "./validation.js";

/** The property azure-iot-amqp-base maps to the `dt-subject` annotation (the PnP component name). */
export const COMPONENT_PROPERTY = "dt-subject";

export type TelemetryPayload = object | string | Buffer;

export interface TelemetryOptions {
  /** Application properties; values are sent as strings. */
  properties?: Record<string, string | number | boolean>;
  /** Default: a random UUID, so that consumers can de-duplicate (docs/conventions.md §5.3). */
  messageId?: string;
  correlationId?: string;
  /** Default "application/json" for object payloads. */
  contentType?: string;
  /** Default "utf-8" for object and string payloads. */
  contentEncoding?: string;
  /** IoT Plug and Play component name (system property `$.sub`). */
  component?: string;
}

/** Builds the SDK message; throws ValidationError for anything IoT Hub would refuse. */
export function toHubMessage(payload: TelemetryPayload, options: TelemetryOptions = {}): Message {
  const properties = propertyTexts(options.properties ?? {});
  const body = telemetryBody(payload);
  checkTelemetrySize(body, properties);
  const isObject = typeof payload === "object" && !Buffer.isBuffer(payload);
  const message = new Message(body);

  message.messageId = validateMessageId(options.messageId ?? randomUUID(), "messageId");
  if (options.correlationId !== undefined) {
    message.correlationId = validateMessageId(options.correlationId, "correlationId");
  }
  const contentType = options.contentType ?? (isObject ? "application/json" : undefined);
  const contentEncoding = options.contentEncoding ?? (Buffer.isBuffer(payload) ? undefined : "utf-8");
  // The SDK types narrow these to its own defaults; IoT Hub takes any MIME type and encoding.
  if (contentType) message.contentType = contentType as Message["contentType"];
  if (contentEncoding) message.contentEncoding = contentEncoding as Message["contentEncoding"];
  if (options.component) {
    // The AMQP transport turns this property into the `dt-subject` message annotation, which is how a
    // Plug and Play component is named on AMQP (azure-iot-amqp-base amqp_message.ts fromMessage).
    message.properties.add(COMPONENT_PROPERTY, options.component);
  }

  for (const [name, text] of Object.entries(properties)) message.properties.add(name, text);
  return message;
}

/** The application properties as they are sent: names to text, leaving out those whose value is undefined or null. */
function propertyTexts(properties: unknown): Record<string, string> {
  if (typeof properties !== "object" || properties === null || Array.isArray(properties)) {
    throw new ValidationError("telemetry properties must be an object of names to values");
  }
  // No prototype: a property named "__proto__" is kept as a property like any other.
  const texts: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of Object.entries(properties)) {
    if (value === undefined || value === null) continue;
    if (name === "") throw new ValidationError("telemetry property names must not be empty");
    if (name === COMPONENT_PROPERTY) {
      throw new ValidationError(
        `"${COMPONENT_PROPERTY}" is reserved: pass the component with the component option`,
      );
    }
    if (!["string", "number", "boolean", "bigint"].includes(typeof value)) {
      throw new ValidationError(`telemetry property "${name}" must be a string, number or boolean`);
    }
    texts[name] = String(value);
  }
  return texts;
}
