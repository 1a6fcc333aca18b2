// Device authentication for the transports that present credentials once per connection or request (MQTT
// CONNECT, the HTTPS Authorization header) rather than over CBS: the same SAS and X.509 rules as AMQP.
import { parseSasToken } from "../../common/sas.js";
import { checkPutToken } from "./cbs-token-check.js";
import type { PeerCertificateInfo } from "./device-connections.js";
import type { DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import { matchX509Device } from "./link-authorization.js";

export type CredentialCheck =
  | { ok: true; hubHostName: string; deviceId: string; method: "sas" | "x509"; expiresAtMs?: number }
  | { ok: false; reason: string };

export interface CredentialContext {
  store: DeviceStore;
  /** Logical hub names served. */
  hostNames: readonly string[];
  /** The hub's listener ports: a token audience "name:port" may carry any of them. */
  ports(): readonly number[];
  /** rejectNextTokens counts SAS checks on every transport. */
  faults: FaultInjection;
}

/** Checks a device SAS token for `deviceId`: audience, device, status, expiry, signature (as CBS put-token does). */
export function checkDeviceSasToken(
  token: string,
  deviceId: string,
  context: CredentialContext,
): CredentialCheck {
  if (context.faults.takeTokenRejection()) return { ok: false, reason: "Unauthorized (fault injection)." };
  const sas = parseSasToken(token);
  if (!sas) return { ok: false, reason: "Malformed SharedAccessSignature token." };
  const audienceHost = /^([^/]+)\//.exec(sas.resource)?.[1] ?? "";
  const audiencePort = Number(/:(\d+)$/.exec(audienceHost)?.[1] ?? NaN);
  const result = checkPutToken(
    { operation: "put-token", type: "servicebus.windows.net:sastoken", name: sas.encodedResource, token },
    {
      hostNames: context.hostNames,
      port: context.ports().includes(audiencePort) ? audiencePort : -1,
      findDevice: (hubHostName, id) => context.store.get(hubHostName, id),
      nowMs: Date.now(),
    },
  );
  if (result.status !== 200) return { ok: false, reason: result.description };
  if (result.deviceId !== deviceId) return { ok: false, reason: "The token is scoped to another device." };
  return {
    ok: true,
    hubHostName: result.hubHostName,
    deviceId,
    method: "sas",
    expiresAtMs: result.expiresAtMs,
  };
}

/** Checks the TLS client certificate against `deviceId`'s registered thumbprint or CA (as AMQP does). */
export function checkDeviceCertificate(
  peer: PeerCertificateInfo | undefined,
  deviceId: string,
  preferredHub: string | undefined,
  context: CredentialContext,
): CredentialCheck {
  if (!peer) return { ok: false, reason: "Neither a SAS token nor a client certificate was presented." };
  const device = matchX509Device(context.store, context.hostNames, peer, deviceId, preferredHub);
  if (!device) return { ok: false, reason: `The client certificate does not authenticate ${deviceId}.` };
  return { ok: true, hubHostName: device.hubHostName, deviceId, method: "x509" };
}

/** The served hub name a host ("name" or "name:port" with one of the hub's ports) stands for. */
export function servedHostName(host: string, context: CredentialContext): string | undefined {
  const lower = host.toLowerCase();
  const exact = context.hostNames.find((name) => name.toLowerCase() === lower);
  if (exact) return exact;
  const match = /^(.*):(\d+)$/.exec(lower);
  if (!match || !context.ports().includes(Number(match[2]))) return undefined;
  return context.hostNames.find((name) => name.toLowerCase() === match[1]);
}
