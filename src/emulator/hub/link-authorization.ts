// Which device a link attach may act for: a live SAS token put over CBS, or a matching X.509 client certificate
// (docs/hub-amqp-protocol.md §2.6).
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type {
  Authorization,
  ConnectionState,
  DeviceConnections,
  PeerCertificateInfo,
} from "./device-connections.js";
import type { DeviceStore } from "./device-store.js";
import type { HubDeviceRecord } from "./types.js";

/** The client certificate of a TLS connection, if the client presented one. */
export function peerCertificateInfo(
  socket: TLSSocket | undefined,
  clientCaConfigured: boolean,
): PeerCertificateInfo | undefined {
  const certificate = socket?.getPeerCertificate();
  if (!certificate?.raw) return undefined;
  const commonName = certificate.subject?.CN;
  return {
    sha1: createHash("sha1").update(certificate.raw).digest("hex").toUpperCase(),
    sha256: createHash("sha256").update(certificate.raw).digest("hex").toUpperCase(),
    ...(typeof commonName === "string" ? { commonName } : {}),
    chainTrusted: socket?.authorized === true && clientCaConfigured,
  };
}

export class LinkAuthorizer {
  constructor(
    private readonly store: DeviceStore,
    private readonly hostNames: readonly string[],
    private readonly connections: DeviceConnections,
  ) {}

  /** The device's authorization on this connection: a live SAS token, or a matching X.509 client certificate. */
  authorize(state: ConnectionState, deviceId: string): Authorization | undefined {
    const existing = state.authorizations.get(deviceId);
    if (existing) {
      if (existing.method === "x509" || (existing.expiresAtMs ?? 0) > Date.now()) return existing;
      return undefined;
    }
    // Otherwise the client certificate: the registered device it stands for (thumbprint, or CA chain with
    // CN == deviceId).
    if (!state.peer) return undefined;
    const device = matchX509Device(this.store, this.hostNames, state.peer, deviceId, state.openHostName);
    if (!device) return undefined;
    const authorization: Authorization = { hubHostName: device.hubHostName, deviceId, method: "x509" };
    this.connections.grant(state, authorization);
    return authorization;
  }
}

/**
 * The enabled device of a served hub that `peer` authenticates as `deviceId`: its thumbprint for self-signed
 * devices, a trusted chain with CN == deviceId for CA devices. Several hubs on one listener: `preferredHub` wins.
 */
export function matchX509Device(
  store: DeviceStore,
  hostNames: readonly string[],
  peer: PeerCertificateInfo,
  deviceId: string,
  preferredHub?: string,
): HubDeviceRecord | undefined {
  const candidates = store
    .findById(deviceId)
    .filter((device) => hostNames.some((name) => name.toLowerCase() === device.hubHostName.toLowerCase()))
    .filter((device) => device.status === "enabled")
    .filter((device) => {
      const auth = device.authentication;
      if (auth.type === "selfSigned") {
        const allowed = [auth.x509Thumbprint.primaryThumbprint, auth.x509Thumbprint.secondaryThumbprint];
        return allowed.includes(peer.sha1) || allowed.includes(peer.sha256);
      }
      if (auth.type === "certificateAuthority") return peer.chainTrusted && peer.commonName === deviceId;
      return false;
    });
  const preferred = preferredHub?.toLowerCase();
  return candidates.find((device) => device.hubHostName.toLowerCase() === preferred) ?? candidates[0];
}
