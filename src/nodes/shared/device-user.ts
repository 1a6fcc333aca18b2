// The contract between the device config node (which owns the session) and the flow nodes that use it,
// in the manner of Node-RED core's MQTT broker node: flow nodes register, the config node fans events out.
import type { Node } from "node-red";
import type { DeviceSession, SessionStateEvent } from "../../device/index.js";

export type DeviceUserKind =
  "provision" | "telemetry" | "twin-in" | "twin-report" | "method" | "method-response" | "c2d-in";

export interface DeviceUser {
  node: Node;
  kind: DeviceUserKind;
  /** For provision nodes: connect as soon as the flow starts. */
  connectOnDeploy?: boolean;
  onState?(event: SessionStateEvent): void;
  onTwin?(desired: Record<string, unknown>): void;
  onDesired?(patch: Record<string, unknown>): void;
}

export interface DeviceConfigNode extends Node {
  /** Adds a user; the session is made on the first one. Returns an error when the configuration is unusable. */
  register(user: DeviceUser): Error | undefined;
  /** Removes a user; `removed` (the flow node was deleted, not redeployed) closes the session after the last. */
  deregister(user: DeviceUser, removed: boolean): Promise<void>;
  /** The session, when the configuration is usable. */
  readonly session: DeviceSession | undefined;
  /** Translates a status key ("azure-iot.status.*") for status texts. */
  statusText(key: string, params?: Record<string, string | number>): string;
}
