// Link addresses the device SDKs attach (docs/hub-amqp-protocol.md §1.6). The Node SDK names the path
// ("/devices/{id}/twin"); the C SDK prefixes the hub it connected to ("amqps://{hub}/devices/{id}/twin").
// Device ids appear raw, not URL-encoded.

export type DeviceLinkKind = "telemetry" | "c2d" | "twin" | "methods";

/** The service side's links (azure-iothub Client): C2D out, delivery feedback and file notifications in. */
export type ServiceLinkKind = "service-c2d" | "service-feedback" | "service-file-notifications";

export type LinkAddress =
  | { kind: "cbs" }
  | { kind: ServiceLinkKind; hubHost?: string }
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

const SERVICE_ADDRESS =
  /^(?:amqps:\/\/([^/]+))?\/messages\/(devicebound|serviceBound\/feedback|serviceBound\/filenotifications)$/;

const SERVICE_KIND_BY_SUFFIX: Record<string, ServiceLinkKind> = {
  devicebound: "service-c2d",
  "serviceBound/feedback": "service-feedback",
  "serviceBound/filenotifications": "service-file-notifications",
};

export function parseLinkAddress(address: unknown): LinkAddress | undefined {
  if (address === "$cbs") return { kind: "cbs" };
  if (typeof address !== "string") return undefined;
  const service = SERVICE_ADDRESS.exec(address);
  const serviceKind = service?.[2] !== undefined ? SERVICE_KIND_BY_SUFFIX[service[2]] : undefined;
  if (service && serviceKind)
    return { kind: serviceKind, ...(service[1] !== undefined ? { hubHost: service[1] } : {}) };
  const match = DEVICE_ADDRESS.exec(address);
  const kind = match?.[3] !== undefined ? KIND_BY_SUFFIX[match[3]] : undefined;
  if (!match?.[2] || !kind) return undefined;
  return { kind, deviceId: match[2], ...(match[1] !== undefined ? { hubHost: match[1] } : {}) };
}

/**
 * Which way a link must point: the device sends telemetry, receives C2D, and has both twin/method links; the
 * service sends C2D and receives feedback and file notifications.
 */
export function directionAllowed(
  kind: DeviceLinkKind | ServiceLinkKind | "cbs",
  peerSends: boolean,
): boolean {
  if (kind === "telemetry" || kind === "service-c2d") return peerSends;
  if (kind === "c2d" || kind === "service-feedback" || kind === "service-file-notifications")
    return !peerSends;
  return true;
}
