// What the hub knows about each attached link: its role for the device, and the outbox that holds messages
// until the device grants credit.
import type { Delivery, Message, Receiver, Sender } from "rhea";
import type { DeviceLinkKind } from "./link-address.js";

export type LinkRole =
  | "cbs-request"
  | "cbs-reply"
  | "telemetry"
  | "twin-request"
  | "twin-reply"
  | "c2d"
  | "method-response"
  | "method-request"
  | "service-c2d"
  | "service-feedback"
  | "service-file-notifications";

export interface LinkState {
  link: Sender | Receiver;
  role: LinkRole;
  hubHostName?: string;
  deviceId?: string;
  /** The SDK pairs its twin and method links by this property (docs/hub-amqp-protocol.md §1.6). */
  channelCorrelationId?: unknown;
  desiredSubscribed: boolean;
  /** Outbound messages waiting for link credit (obligation 5). */
  outbox: { message: Message; tag?: Buffer }[];
  /** C2D (or feedback) deliveries sent on this link and not yet settled by the peer. */
  c2dInFlight: Set<Delivery>;
}

export function newLinkState(
  link: Sender | Receiver,
  role: LinkRole,
  channelCorrelationId: unknown,
): LinkState {
  return { link, role, channelCorrelationId, desiredSubscribed: false, outbox: [], c2dInFlight: new Set() };
}

export function roleFor(kind: DeviceLinkKind, deviceSends: boolean): LinkRole {
  switch (kind) {
    case "telemetry":
      return "telemetry";
    case "c2d":
      return "c2d";
    case "twin":
      return deviceSends ? "twin-request" : "twin-reply";
    case "methods":
      return deviceSends ? "method-response" : "method-request";
  }
}

/** Sends now when the device has granted credit, else queues until it does (obligation 5). */
export function sendOnLink(linkState: LinkState, message: Message): void {
  const sender = linkState.link as Sender;
  if (linkState.outbox.length === 0 && sender.is_open() && sender.sendable()) {
    sender.send(message);
    return;
  }
  linkState.outbox.push({ message });
}

/** Sends what the outbox holds, as far as the device's credit goes. */
export function drainOutbox(linkState: LinkState): void {
  const sender = linkState.link as Sender;
  while (linkState.outbox.length > 0 && sender.is_open() && sender.sendable()) {
    const next = linkState.outbox.shift();
    if (next) sender.send(next.message, next.tag);
  }
}
