// The device twin links: GET / PATCH reported requests, desired-property subscriptions, and desired-property
// notifications pushed to subscribed devices (docs/hub-amqp-protocol.md §4).
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import { types as amqpTypes, type Message } from "rhea";
import { bodyBytes, jsonDataSection } from "./amqp-body.js";
import { amqpMessage } from "./amqp-wire.js";
import type { ConnectionState, DeviceConnections } from "./device-connections.js";
import type { DesiredChange, DeviceStore } from "./device-store.js";
import { AzureErrorCode, type AzureErrorBody, type AzureErrorName } from "./errors.js";
import { sendOnLink, type LinkState } from "./link-state.js";
import type { FaultInjection } from "./fault-injection.js";
import { emitSafely } from "./service-events.js";
import { TWIN_GET_THROTTLED } from "./twin-requests.js";
import { TwinRuleViolation } from "./twin-rules.js";
import type { TwinSubscriptionEvent } from "./types.js";

export class TwinLinks {
  constructor(
    private readonly store: DeviceStore,
    private readonly connections: DeviceConnections,
    private readonly faults: FaultInjection,
    private readonly events: EventEmitter,
  ) {}

  pushDesired(hubHostName: string, deviceId: string, change: DesiredChange): void {
    const body = { ...change.patch, $version: change.version };
    for (const [state] of this.connections.authorizationsOf(hubHostName, deviceId)) {
      for (const link of state.links.values()) {
        if (link.role !== "twin-reply" || link.deviceId !== deviceId || !link.desiredSubscribed) continue;
        // Notifications carry no correlation id; the SDK tells them from responses that way (§4.4).
        sendOnLink(
          link,
          amqpMessage({
            message_annotations: { version: amqpTypes.wrap_long(change.version) },
            body: jsonDataSection(body),
          }),
        );
      }
    }
  }

  onTwinRequest(state: ConnectionState, linkState: LinkState, message: Message): void {
    const { hubHostName, deviceId } = linkState;
    if (!hubHostName || !deviceId) return;
    const replyLink = this.twinReplyLink(state, linkState);
    const correlationId = message.correlation_id;
    const respond = (status: number, body?: unknown, version?: number): void => {
      if (!replyLink || correlationId === undefined) return;
      const annotations: Record<string, unknown> = { status: amqpTypes.wrap_int(status) };
      if (version !== undefined) annotations.version = amqpTypes.wrap_long(version);
      sendOnLink(
        replyLink,
        amqpMessage({
          correlation_id: correlationId,
          message_annotations: annotations,
          ...(body !== undefined ? { body: jsonDataSection(body) } : {}),
        }),
      );
    };
    const annotations = (message.message_annotations ?? {}) as Record<string, unknown>;
    const operation = annotations.operation;
    const resource = annotations.resource;
    if (!this.store.get(hubHostName, deviceId)) {
      respond(404, azureError("DeviceNotFound", `Device ${deviceId} not found.`));
      return;
    }
    if (operation === "GET" && resource === undefined) {
      if (this.faults.takeTwinGetThrottling()) {
        respond(429, azureError("ThrottlingException", TWIN_GET_THROTTLED));
        return;
      }
      respond(200, this.store.deviceTwinView(hubHostName, deviceId));
      return;
    }
    if (operation === "PATCH" && resource === "/properties/reported") {
      let patch: unknown;
      try {
        patch = JSON.parse(bodyBytes(message.body).toString("utf8")) as unknown;
      } catch {
        respond(400, azureError("ArgumentInvalid", "The reported properties patch is not valid JSON."));
        return;
      }
      try {
        const version = this.store.patchReported(hubHostName, deviceId, patch);
        respond(204, undefined, version);
      } catch (error) {
        if (!(error instanceof TwinRuleViolation)) throw error;
        respond(400, azureError("ArgumentInvalid", error.message));
      }
      return;
    }
    if (
      (operation === "PUT" || operation === "DELETE") &&
      resource === "/notifications/twin/properties/desired"
    ) {
      if (replyLink) replyLink.desiredSubscribed = operation === "PUT";
      respond(200);
      const event: TwinSubscriptionEvent = { hubHostName, deviceId, subscribed: operation === "PUT" };
      emitSafely(this.events, "twinSubscription", event);
      return;
    }
    respond(
      400,
      azureError(
        "ArgumentInvalid",
        `Unsupported twin operation ${typeof operation === "string" ? operation : "?"} ${typeof resource === "string" ? resource : ""}.`,
      ),
    );
  }

  /** The twin receiver of the same device on this connection, preferring the same channel-correlation-id (pitfall 8). */
  private twinReplyLink(state: ConnectionState, request: LinkState): LinkState | undefined {
    let fallback: LinkState | undefined;
    for (const link of state.links.values()) {
      if (link.role !== "twin-reply" || link.deviceId !== request.deviceId || !link.link.is_open()) continue;
      if (
        request.channelCorrelationId !== undefined &&
        link.channelCorrelationId === request.channelCorrelationId
      ) {
        return link;
      }
      fallback ??= link;
    }
    return fallback;
  }
}

function azureError(name: AzureErrorName, message: string): AzureErrorBody {
  return {
    errorCode: AzureErrorCode[name],
    trackingId: randomUUID().replace(/-/g, ""),
    message,
    timestampUtc: new Date().toISOString(),
  };
}
