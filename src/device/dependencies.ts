// The session's two contacts with the outside world, DPS and IoT Hub, behind one small interface: the
// real one drives the Azure SDK; unit tests of the session's logic pass a fake.
import { createPrivateKey } from "node:crypto";
import { TpmSecurityClient } from "../tpm/security-client.js";
import { DEFAULT_GLOBAL_ENDPOINT, DEFAULTS, HUB_TRANSPORTS, type DeviceSessionConfig } from "./config.js";
import { ConfigurationError } from "./errors.js";
import { deriveDeviceKey } from "../common/group-key.js";
import { HubConnection, type HubCredentials, type HubIdentity, type HubLink } from "./hub-connection.js";
import { DEFAULT_PORTS } from "./tls-diagnosis.js";
import {
  provisionDevice,
  splitHostPort,
  type ProvisionedIdentity,
  type ProvisioningSecurity,
} from "./provisioning.js";
import { validateIdScope, validateRegistrationId } from "./validation.js";
import { ProxyTunnelAgent, proxyFor } from "./proxy.js";

export interface SessionDependencies {
  /** The DPS registration id (for TPM read from the endorsement key unless configured). */
  registrationId(): Promise<string>;
  provision(signal: AbortSignal): Promise<ProvisionedIdentity>;
  connect(identity: HubIdentity, signal: AbortSignal): Promise<HubLink>;
  /** Releases long-lived resources (the TPM connection). */
  dispose(): Promise<void>;
}

/** The port each hub transport dials (the WebSocket ones always 443). */
const HUB_PORTS = { amqp: 5671, "amqp-ws": 443, mqtt: 8883, "mqtt-ws": 443 } as const;

/** A base64 (or base64url) key as the Azure portal and the DPS service API give it. */
const BASE64_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** Checks what can be checked before the first connection, with messages that name the field. */
export function checkConfig(config: DeviceSessionConfig): void {
  if (typeof config !== "object" || config === null)
    throw new ConfigurationError("device session config is required");
  const direct = config.hub?.direct;
  if (direct) checkDirectIdentity(config);
  else checkDps(config);
  const hubTransport = config.hub?.transport ?? "amqp";
  if (!HUB_TRANSPORTS.includes(hubTransport)) {
    throw new ConfigurationError(
      `unknown hub transport "${String(hubTransport)}": use ${HUB_TRANSPORTS.join(", ")}`,
    );
  }
  const attestation = config.attestation;
  if (!attestation) throw new ConfigurationError("attestation is required (tpm, symmetricKey or x509)");
  switch (attestation.kind) {
    case "tpm":
      if (!attestation.connection) throw new ConfigurationError("a TPM attestation needs its TPM connection");
      if (attestation.registrationId !== undefined) validateRegistrationId(attestation.registrationId);
      break;
    case "symmetricKey": {
      // Without DPS it is the device id, checked above with the hub's own rules.
      if (!direct) validateRegistrationId(attestation.registrationId);
      const key = "groupKey" in attestation ? attestation.groupKey : attestation.key;
      // Node decodes base64 leniently (it skips what is not base64), so a pasted connection string would
      // become a wrong key that DPS refuses, retried for ever. Never quote the key.
      if (typeof key !== "string" || !BASE64_KEY.test(key.trim())) {
        throw new ConfigurationError(
          `a symmetric key attestation needs a base64 ${"groupKey" in attestation ? "group key" : "key"}`,
        );
      }
      break;
    }
    case "x509":
      if (!direct) validateRegistrationId(attestation.registrationId);
      if (!attestation.cert || !attestation.key) {
        throw new ConfigurationError(
          "an X.509 attestation needs the device certificate and its private key (PEM)",
        );
      }
      readablePrivateKey(attestation.key, attestation.passphrase);
      break;
    default:
      throw new ConfigurationError(
        `unknown attestation kind "${String((attestation as { kind?: unknown }).kind)}"`,
      );
  }
}

/** The DPS settings, when the identity comes from DPS. */
function checkDps(config: DeviceSessionConfig): void {
  const dps = config.dps;
  if (!dps) throw new ConfigurationError("dps settings are required (idScope, endpoint, transport)");
  validateIdScope(dps.idScope);
  const transport = dps.transport ?? "amqp";
  if (!["amqp", "amqp-ws", "https", "mqtt"].includes(transport)) {
    throw new ConfigurationError(`unknown DPS transport "${transport}": use amqp, amqp-ws, https or mqtt`);
  }
  const endpoint = dps.globalEndpoint ?? DEFAULT_GLOBAL_ENDPOINT;
  const { port } = splitHostPort(endpoint);
  if (transport === "amqp-ws" && port !== undefined) {
    throw new ConfigurationError(
      "the amqp-ws transport always uses port 443: remove the port from the DPS endpoint",
    );
  }
  if (config.attestation?.kind === "tpm" && transport === "mqtt") {
    throw new ConfigurationError(
      "TPM attestation cannot use the mqtt transport: choose amqp, amqp-ws or https",
    );
  }
}

/**
 * Without DPS: the hub host name and device id, and a device key or an X.509 certificate (a TPM's hub key only
 * ever comes from a DPS activation).
 */
function checkDirectIdentity(config: DeviceSessionConfig): void {
  const direct = config.hub!.direct!;
  if (config.dps) {
    throw new ConfigurationError("a direct hub connection does not use DPS: set either dps or hub.direct");
  }
  if (typeof direct.hostName !== "string" || !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(direct.hostName.trim())) {
    throw new ConfigurationError("the hub host name is required, e.g. my-hub.azure-devices.net");
  }
  validateDeviceId(direct.deviceId);
  const kind = config.attestation?.kind;
  if (kind === "tpm") {
    throw new ConfigurationError(
      "a TPM device gets its hub key from DPS: a direct hub connection cannot use it",
    );
  }
  if (kind === "symmetricKey" && "groupKey" in config.attestation) {
    throw new ConfigurationError("a direct hub connection takes the device key, not an enrollment group key");
  }
}

/** IoT Hub device ids: up to 128 of letters, digits and - . % _ * ? ! ( ) , : = @ $ ' (never quoted back when wrong). */
function validateDeviceId(deviceId: unknown): void {
  if (typeof deviceId !== "string" || !/^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/.test(deviceId)) {
    throw new ConfigurationError(
      "the device id is required: up to 128 letters, digits and - . % _ * ? ! ( ) , : = @ $ '",
    );
  }
}

/**
 * The private key as an unencrypted PEM, kept in memory only. Decrypted here once because not every SDK
 * transport passes a passphrase on to TLS (the AMQP base copies only cert, key and ca). A key that cannot be
 * opened fails here, named, instead of at every TLS handshake.
 */
function readablePrivateKey(key: string, passphrase: string | undefined): string {
  try {
    const opened = createPrivateKey(passphrase ? { key, passphrase } : { key });
    return passphrase ? opened.export({ type: "pkcs8", format: "pem" }).toString() : key;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const encrypted = /ENCRYPTED/.test(key);
    // Never quote the key or the passphrase.
    throw new ConfigurationError(
      encrypted
        ? passphrase
          ? "the X.509 private key cannot be decrypted: wrong passphrase"
          : "the X.509 private key is encrypted: set its passphrase"
        : `the X.509 private key is not a readable PEM key${typeof code === "string" ? ` (${code})` : ""}`,
    );
  }
}

/** The real dependencies: azure-iot-provisioning-device and azure-iot-device (+ our TPM client). */
export function sdkDependencies(config: DeviceSessionConfig): SessionDependencies {
  const { dps, attestation } = config;
  const direct = config.hub?.direct;
  const options = config.options ?? {};
  const payload =
    config.provisioningPayload || config.modelId
      ? { ...config.provisioningPayload, ...(config.modelId ? { modelId: config.modelId } : {}) }
      : undefined;

  let tpm: TpmSecurityClient | undefined;
  const tpmClient = (): TpmSecurityClient => {
    if (attestation.kind !== "tpm") throw new ConfigurationError("not a TPM attestation");
    tpm ??= new TpmSecurityClient(
      attestation.connection,
      attestation.registrationId ? { registrationId: attestation.registrationId } : {},
    );
    return tpm;
  };

  const registrationId = async (): Promise<string> =>
    attestation.kind === "tpm"
      ? (attestation.registrationId ?? (await tpmClient().getRegistrationId()))
      : attestation.registrationId;

  const security = async (): Promise<ProvisioningSecurity> => {
    switch (attestation.kind) {
      case "tpm":
        return { kind: "tpm", registrationId: await registrationId(), client: tpmClient() };
      case "symmetricKey":
        return {
          kind: "symmetricKey",
          registrationId: attestation.registrationId,
          deviceKey: symmetricKey(),
        };
      case "x509":
        return {
          kind: "x509",
          registrationId: attestation.registrationId,
          cert: attestation.cert,
          key: privateKey(),
        };
    }
  };

  let plainKey: string | undefined;
  const privateKey = (): string => {
    if (attestation.kind !== "x509") throw new ConfigurationError("not an X.509 attestation");
    plainKey ??= readablePrivateKey(attestation.key, attestation.passphrase);
    return plainKey;
  };

  const symmetricKey = (): string => {
    if (attestation.kind !== "symmetricKey") throw new ConfigurationError("not a symmetric key attestation");
    return "groupKey" in attestation
      ? deriveDeviceKey(attestation.groupKey, attestation.registrationId)
      : attestation.key;
  };

  const hubCredentials = (): HubCredentials => {
    switch (attestation.kind) {
      case "tpm":
        return { kind: "tpm", signer: tpmClient() };
      case "symmetricKey":
        return { kind: "symmetricKey", key: symmetricKey() };
      case "x509":
        return { kind: "x509", cert: attestation.cert, key: privateKey() };
    }
  };

  return {
    registrationId,
    provision: async (signal) => {
      // Without DPS the identity is the configured one, at once.
      if (direct) {
        const deviceId = direct.deviceId;
        return { registrationId: deviceId, assignedHub: direct.hostName.trim(), deviceId };
      }
      if (!dps) throw new ConfigurationError("dps settings are required (idScope, endpoint, transport)");
      const endpoint = dps.globalEndpoint ?? DEFAULT_GLOBAL_ENDPOINT;
      const dpsTransport = dps.transport ?? "amqp";
      const { host, port } = splitHostPort(endpoint);
      const proxy = proxyFor(host, port ?? DEFAULT_PORTS[dpsTransport], config.proxy);
      return provisionDevice({
        endpoint,
        ...(proxy ? { proxy } : {}),
        idScope: dps.idScope.trim(),
        transport: dpsTransport,
        ca: dps.ca,
        security: await security(),
        payload,
        timeoutMs: options.provisioningTimeoutMs ?? DEFAULTS.provisioningTimeoutMs,
        signal,
      });
    },
    connect: (identity, signal) => {
      const transport = config.hub?.transport ?? "amqp";
      const { host, port } = splitHostPort(identity.assignedHub);
      const proxy = proxyFor(host, port ?? HUB_PORTS[transport], config.proxy);
      if (proxy && (transport === "amqp" || transport === "mqtt")) {
        return Promise.reject(
          new ConfigurationError(
            `an HTTP proxy carries only WebSocket: choose the amqp-ws or mqtt-ws hub transport, not ${transport}`,
          ),
        );
      }
      const agent = proxy ? new ProxyTunnelAgent(proxy) : undefined;
      const opened = HubConnection.open(identity, hubCredentials(), {
        transport,
        ...(agent ? { webSocketAgent: agent } : {}),
        ca: config.hub?.ca ?? dps?.ca,
        modelId: config.modelId,
        productInfo: options.productInfo,
        connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        closeTimeoutMs: DEFAULTS.closeTimeoutMs,
        signal,
      });
      // The proxy's own answer says more than the transport's "could not connect".
      return opened.catch((error: unknown) => {
        throw agent?.lastFailure ?? error;
      });
    },
    dispose: async () => {
      const client = tpm;
      tpm = undefined;
      if (client) await client.close();
    },
  };
}
