// The service side's C2D sender link (/messages/devicebound, azure-iothub Client.send): each message names its
// device in "to" and is queued for it, or rejected with the condition IoT Hub uses (unknown device, queue
// full, too large), which the service SDK turns into DeviceNotFoundError and friends.
import type { Delivery, Message } from "rhea";
import { bodyBytes, messageIdText } from "./amqp-body.js";
import { Condition, settle } from "./amqp-wire.js";
import type { C2dDispatch } from "./c2d-dispatch.js";
import type { ConnectionState } from "./device-connections.js";
import { HubServiceError } from "./errors.js";
import { propertyText } from "./telemetry.js";
import type { C2dAck, CloudToDeviceMessage } from "./types.js";

const DEVICE_TARGET = /^\/devices\/([^/]+)\/messages\/devicebound$/;
const ACK_PROPERTY = "iothub-ack";

function conditionOf(error: HubServiceError): string {
  if (error.status === 404) return Condition.notFound;
  if (error.status === 403) return Condition.resourceLimitExceeded;
  if (error.status === 413) return Condition.messageSizeExceeded;
  return "com.microsoft:argument-error";
}

/** The SDK URL-encodes the device id in "to"; a malformed escape is taken literally (and not found). */
function decodedDeviceId(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export class ServiceC2dReceiver {
  constructor(private readonly c2d: C2dDispatch) {}

  onMessage(state: ConnectionState, delivery: Delivery, message: Message): void {
    const service = state.service;
    const hubHostName = service && service.expiresAtMs > Date.now() ? service.hubHostName : undefined;
    if (!hubHostName) {
      settle(delivery, "reject", {
        condition: Condition.unauthorized,
        description: "Not authorized (no valid service token on this connection).",
      });
      return;
    }
    const target = typeof message.to === "string" ? DEVICE_TARGET.exec(message.to) : null;
    if (!target?.[1]) {
      settle(delivery, "reject", {
        condition: "com.microsoft:argument-error",
        description: `"to" must be /devices/{deviceId}/messages/devicebound.`,
      });
      return;
    }
    const properties: Record<string, string> = {};
    let ack: string | undefined;
    for (const [name, value] of Object.entries(message.application_properties ?? {})) {
      if (name === ACK_PROPERTY) ack = propertyText(value);
      else properties[name] = propertyText(value);
    }
    const expiry: unknown = message.absolute_expiry_time;
    const messageId = messageIdText(message.message_id);
    const correlationId = messageIdText(message.correlation_id);
    const contentType = typeof message.content_type === "string" ? message.content_type : undefined;
    const contentEncoding =
      typeof message.content_encoding === "string" ? message.content_encoding : undefined;
    const c2dMessage: CloudToDeviceMessage = {
      body: bodyBytes(message.body),
      properties,
      ...(messageId !== undefined ? { messageId } : {}),
      ...(correlationId !== undefined ? { correlationId } : {}),
      ...(contentType !== undefined ? { contentType } : {}),
      ...(contentEncoding !== undefined ? { contentEncoding } : {}),
      ...(ack !== undefined ? { ack: ack as C2dAck } : {}),
      ...(expiry instanceof Date || typeof expiry === "number"
        ? { expiryTimeUtc: new Date(expiry).toISOString() }
        : {}),
    };
    try {
      this.c2d.send(hubHostName, decodedDeviceId(target[1]), c2dMessage);
    } catch (error) {
      if (!(error instanceof HubServiceError)) throw error;
      settle(delivery, "reject", { condition: conditionOf(error), description: error.message });
      return;
    }
    settle(delivery, "accept");
  }
}
