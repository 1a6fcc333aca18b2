// What a device session is made from: a plain object, so a Node-RED config node or a JSON file can hold it.
import type { TpmConnectionSpec } from "../tpm/connection-spec.js";
import type { BackoffPolicy } from "./backoff.js";
import type { RetryPolicy } from "./retry-policy.js";
import type { OverflowPolicy } from "./outbox.js";
import type { RegistrationStore } from "./registration-store.js";
import type { ProxyConfig } from "./proxy.js";

export type DpsTransportKind = "amqp" | "amqp-ws" | "https" | "mqtt";

/** How the device talks to IoT Hub: AMQP on 5671, MQTT on 8883, or either over WebSocket on 443. */
export type HubTransportKind = "amqp" | "amqp-ws" | "mqtt" | "mqtt-ws";

export const HUB_TRANSPORTS: readonly HubTransportKind[] = ["amqp", "amqp-ws", "mqtt", "mqtt-ws"];

export interface HubConfig {
  /** Default "amqp". The WebSocket transports always use port 443 of the hub's host name. */
  transport?: HubTransportKind;
  /**
   * Without DPS: the hub and the device id to connect with (from a device connection string, or a device
   * registered with an X.509 certificate). Provisioning then hands back this identity at once.
   */
  direct?: DirectHubIdentity;
  /** Extra trusted CA certificate(s) for the hub, PEM. Default: the DPS settings' `ca`. */
  ca?: string;
}

export interface DirectHubIdentity {
  /** The hub's host name, e.g. "my-hub.azure-devices.net". */
  hostName: string;
  deviceId: string;
}

export interface DpsConfig {
  /** DPS host, optionally "host:port" (amqp, https, mqtt). Default global.azure-devices-provisioning.net. */
  globalEndpoint?: string;
  idScope: string;
  /** Default "amqp". MQTT cannot carry TPM attestation. */
  transport?: DpsTransportKind;
  /** Extra trusted CA certificate(s), PEM: the emulator's CA or a TLS-inspecting proxy. Also used for IoT Hub. */
  ca?: string;
}

export type AttestationConfig =
  | {
      kind: "tpm";
      connection: TpmConnectionSpec;
      /** Default: derived from the endorsement key. */ registrationId?: string;
    }
  | { kind: "symmetricKey"; registrationId: string; key: string }
  | { kind: "symmetricKey"; registrationId: string; groupKey: string }
  | {
      kind: "x509";
      registrationId: string;
      cert: string;
      key: string;
      /** For an encrypted private key (PEM "ENCRYPTED PRIVATE KEY"). */
      passphrase?: string;
    };

export interface DeviceSessionOptions {
  /** Delays between retries of DPS and hub. Default: 1 s doubling up to 60 s, 20 % jitter. */
  backoff?: BackoffPolicy;
  /** What a failure means and how long to wait (default: DefaultRetryPolicy over `backoff`). */
  retryPolicy?: RetryPolicy;
  /** Most telemetry messages sent and not yet settled (pipelining, in order). Default 64. */
  telemetryWindow?: number;
  /** How long the hub may take to accept one telemetry message. Default 30 s. */
  telemetryAckTimeoutMs?: number;
  /** How long a twin GET or reported-properties PATCH may take. Default 30 s. */
  twinTimeoutMs?: number;
  /** How long one DPS registration may take, polls included. Default 60 s. */
  provisioningTimeoutMs?: number;
  /** How long opening the hub connection (TLS + AMQP + CBS) may take. Default 30 s. */
  connectTimeoutMs?: number;
  /**
   * Most telemetry messages held (waiting or in flight). Default 3,000,000 on disk (8 h at 100 msg/s), 10,000
   * in memory.
   */
  outboxMaxMessages?: number;
  /** @deprecated The former name of outboxMaxMessages (used when that is not set). */
  outboxCapacity?: number;
  /** Most bytes of telemetry held, as the message's body, ids and properties count. Default 1 GiB on disk, 16 MiB in memory. */
  outboxMaxBytes?: number;
  /**
   * Keeps the outbox on disk, in segment files `<outboxFile>.00000001`, … (an append-only log): what waits in it
   * survives a restart or a process kill and is sent by the next session over the same files. Default: in memory.
   */
  outboxFile?: string;
  /** What a full outbox does. Default "drop-oldest". */
  outboxOverflow?: OverflowPolicy;
  /** Where DPS results are cached. Default: in memory (lost on restart). */
  registrationStore?: RegistrationStore;
  /** Shorthand for a JsonFileRegistrationStore at this path (ignored when registrationStore is given). */
  registrationCacheFile?: string;
  /**
   * How long a cloud-to-device message that arrives while no handler is registered (a redeploy) waits for one
   * before it is abandoned to the hub. Default 10 s.
   */
  cloudMessageHoldMs?: number;
  /** Sent as the SDK's productInfo (user agent suffix). */
  productInfo?: string;
}

export interface DeviceSessionConfig {
  /** Required, unless `hub.direct` names the hub and device to connect to without DPS. */
  dps?: DpsConfig;
  /** Without DPS: a symmetric key or X.509 attestation whose registrationId is the device id. */
  attestation: AttestationConfig;
  /** The hub connection: transport (default AMQP) and, without DPS, the identity. */
  hub?: HubConfig;
  /**
   * An HTTP proxy for DPS (amqp-ws, https) and the hub (amqp-ws, mqtt-ws): a URL, or `{ fromEnvironment: true }`
   * for HTTPS_PROXY / NO_PROXY. A host the proxy applies to over plain AMQP or MQTT is a configuration error.
   */
  proxy?: ProxyConfig;
  /** Custom DPS payload (custom allocation webhooks); modelId is added to it when set. */
  provisioningPayload?: Record<string, unknown>;
  /** IoT Plug and Play model id, e.g. "dtmi:com:example:Thermostat;1": sent to DPS and to the hub. */
  modelId?: string;
  options?: DeviceSessionOptions;
}

export const DEFAULT_GLOBAL_ENDPOINT = "global.azure-devices-provisioning.net";

export const DEFAULTS = {
  telemetryAckTimeoutMs: 30_000,
  twinTimeoutMs: 30_000,
  provisioningTimeoutMs: 60_000,
  connectTimeoutMs: 30_000,
  telemetryWindow: 64,
  outboxOverflow: "drop-oldest" as OverflowPolicy,
  /** stop() gives the SDK this long to close the connection before dropping it (Node-RED allows 15 s). */
  closeTimeoutMs: 4_000,
};
