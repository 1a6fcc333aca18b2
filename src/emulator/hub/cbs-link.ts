// The $cbs links: put-token requests from the device, and the replies that grant it a SAS authorization
// (docs/hub-amqp-protocol.md §2.2).
import { types as amqpTypes, type Message } from "rhea";
import { amqpMessage } from "./amqp-wire.js";
import { parseSasToken } from "../../common/sas.js";
import { checkPutToken, checkServicePutToken, type PutTokenResult } from "./cbs-token-check.js";
import type { ConnectionState, DeviceConnections } from "./device-connections.js";
import type { DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import { sendOnLink, type LinkState } from "./link-state.js";

export class CbsLinks {
  constructor(
    private readonly hostNames: string[],
    private readonly boundPort: () => number,
    private readonly store: DeviceStore,
    private readonly connections: DeviceConnections,
    private readonly faults: FaultInjection,
    private readonly servicePolicies: readonly { keyName: string; key: string }[] = [],
  ) {}

  /** A reply link attached: it carries the replies to requests that arrived before it. */
  replyLinkAttached(state: ConnectionState, linkState: LinkState): void {
    for (const reply of state.pendingCbsReplies.splice(0)) sendOnLink(linkState, reply);
  }

  onPutToken(state: ConnectionState, message: Message): void {
    const properties = (message.application_properties ?? {}) as Record<string, unknown>;
    let result: PutTokenResult | { status: number; description: string };
    const token: unknown = message.body;
    const tokenText =
      typeof token === "string" ? token : Buffer.isBuffer(token) ? token.toString("utf8") : token;
    const sas = typeof tokenText === "string" ? parseSasToken(tokenText) : undefined;
    if (typeof tokenText === "string" && sas?.keyName !== undefined && !sas.resource.includes("/")) {
      // A policy token scoped to the whole hub: the service side (azure-iothub Client).
      const service = checkServicePutToken(
        { operation: properties.operation, type: properties.type, name: properties.name, token: tokenText },
        {
          hostNames: this.hostNames,
          port: this.boundPort(),
          policies: this.servicePolicies,
          nowMs: Date.now(),
        },
      );
      if (service.status === 200)
        state.service = { hubHostName: service.hubHostName, expiresAtMs: service.expiresAtMs };
      result = service;
    } else if (this.faults.takeTokenRejection()) {
      result = { status: 401, description: "Unauthorized (fault injection)." };
    } else {
      result = checkPutToken(
        {
          operation: properties.operation,
          type: properties.type,
          name: properties.name,
          token: tokenText,
        },
        {
          hostNames: this.hostNames,
          port: this.boundPort(),
          findDevice: (hubHostName, deviceId) => this.store.get(hubHostName, deviceId),
          nowMs: Date.now(),
        },
      );
    }
    if (result.status === 200 && "deviceId" in result) {
      this.connections.grant(state, {
        hubHostName: result.hubHostName,
        deviceId: result.deviceId,
        method: "sas",
        expiresAtMs: result.expiresAtMs,
      });
    }
    // correlation-id must be the request's message-id as sent (a string for the Node SDK), status an AMQP int (§2.2).
    const reply = amqpMessage({
      ...(typeof message.reply_to === "string" ? { to: message.reply_to } : {}),
      correlation_id: message.message_id,
      application_properties: {
        "status-code": amqpTypes.wrap_int(result.status),
        "status-description": result.description,
      },
    });
    const replyLink = [...state.links.values()].find(
      (link) => link.role === "cbs-reply" && link.link.is_open(),
    );
    if (replyLink) sendOnLink(replyLink, reply);
    else state.pendingCbsReplies.push(reply);
  }
}
