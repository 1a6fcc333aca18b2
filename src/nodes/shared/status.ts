// One place maps a session state to a node status dot (docs/architecture.md §7.4: a statusFor(state) function).
import type { SessionStateEvent } from "../../device/index.js";

export interface StatusView {
  fill: "red" | "green" | "yellow" | "blue" | "grey";
  shape: "dot" | "ring";
  /** Message key in the azure-iot-device catalog, under "azure-iot.status". */
  key: string;
  params?: Record<string, string | number>;
}

export function statusFor(event: SessionStateEvent): StatusView {
  switch (event.state) {
    case "idle":
      return { fill: "grey", shape: "ring", key: "idle" };
    case "provisioning":
      return { fill: "yellow", shape: "ring", key: "provisioning" };
    case "provisioned":
      return { fill: "yellow", shape: "dot", key: "provisioned" };
    case "connecting":
      return { fill: "yellow", shape: "ring", key: "connecting" };
    case "connected":
      return { fill: "green", shape: "dot", key: "connected" };
    case "disconnected":
      return { fill: "red", shape: "ring", key: "disconnected" };
    case "retrying":
      return {
        fill: "yellow",
        shape: "ring",
        key: "retrying",
        params: { seconds: Math.max(1, Math.round((event.nextRetryMs ?? 0) / 1000)) },
      };
    case "error":
      return { fill: "red", shape: "dot", key: "error" };
    case "stopping":
      return { fill: "grey", shape: "ring", key: "stopping" };
    case "closed":
      return { fill: "grey", shape: "ring", key: "idle" };
  }
}

/** msg.iothub: the session state event, without empty fields, as a fresh object per message. */
export function iothubOf(event: SessionStateEvent): SessionStateEvent {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) if (value !== undefined) copy[key] = value;
  return copy as unknown as SessionStateEvent;
}
