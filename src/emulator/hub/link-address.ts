// Link addresses the device SDKs attach (hub-amqp-protocol.md §1.6). The Node SDK names the path
// ("/devices/{id}/twin"); the C SDK prefixes the hub it connected to ("amqps://{hub}/devices/{id}/twin").
// Device ids appear raw, not URL-encoded.

export type DeviceLinkKind = "telemetry" | "c2d" | "twin" | "methods";

export type LinkAddress =
  | { kind: "cbs" }
  | {
      kind: DeviceLinkKind;
      deviceId: string;
      /** The hub named in an "amqps://{hub}/..." address; absent in the path form. */
      hubHost?: string;
    };

const DEVICE_ADDRESS =
  /^(?:amqps:\/\/([^/]+))?\/devices\/([^/]+)\/(messages\/events|messages\/devicebound|twin|methods\/devicebound)$/;

const KIND_BY_SUFFIX: Record<string, DeviceLinkKind> = {
  "messages/events": "telemetry",
  "messages/devicebound": "c2d",
  twin: "twin",
  "methods/devicebound": "methods",
};

export function parseLinkAddress(address: unknown): LinkAddress | undefined {
  if (address === "$cbs") return { kind: "cbs" };
  if (typeof address !== "string") return undefined;
  const match = DEVICE_ADDRESS.exec(address);
  const kind = match?.[3] !== undefined ? KIND_BY_SUFFIX[match[3]] : undefined;
  if (!match?.[2] || !kind) return undefined;
  return { kind, deviceId: match[2], ...(match[1] !== undefined ? { hubHost: match[1] } : {}) };
}

/** Which way a device link must point: the device sends telemetry, receives C2D, and has both twin/method links. */
export function directionAllowed(kind: DeviceLinkKind | "cbs", deviceSends: boolean): boolean {
  if (kind === "telemetry") return deviceSends;
  if (kind === "c2d") return !deviceSends;
  return true;
}
