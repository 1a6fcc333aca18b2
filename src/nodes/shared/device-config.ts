// What the device config node holds, turned into a device session configuration.
import { readFileSync } from "node:fs";
import type { NodeDef } from "node-red";
import { ExponentialBackoff, type AttestationConfig, type DeviceSessionConfig } from "../../device/index.js";
import { configField } from "./config-field.js";
import type { DpsConfigNode } from "./dps-config.js";
import { NodeConfigurationError } from "./messages.js";
import type { TpmConfigNode } from "./tpm-config.js";

export interface DeviceNodeDef extends NodeDef {
  dps: string;
  attestation: "tpm" | "symmetricKey" | "groupKey" | "x509";
  tpm: string;
  registrationId: string;
  certFile: string;
  keyFile: string;
  modelId: string;
  payload: string;
  /** Most telemetry messages the outbox holds; empty means the default of its storage. */
  outboxLimit: string | number;
  /** Most megabytes of telemetry the outbox holds; empty means the default of its storage. */
  outboxMaxMegabytes?: string | number;
  outboxOverflow: "drop-oldest" | "reject-new";
  /** Where the outbox lives: "disk" (default, in the user folder) or "memory". */
  outboxStorage?: "disk" | "memory";
  /** Seconds the hub may take to accept a telemetry message before it is sent again. Default 30. */
  ackTimeout?: string | number;
  /** Telemetry messages in flight at once (sent, not yet acknowledged). Default 64. */
  telemetryWindow?: string | number;
  /** Longest wait between reconnect attempts, in seconds. Default 60. */
  maxRetryDelay?: string | number;
}

export interface DeviceCredentials {
  symmetricKey?: string;
  groupKey?: string;
  certPem?: string;
  keyPem?: string;
  passphrase?: string;
}

/** More in flight buys nothing measurable (README "Performance") and holds more for re-sending. */
const MAX_TELEMETRY_WINDOW = 1000;

/** The session configuration a device node describes; throws ConfigurationError with a clear message. */
export function sessionConfigOf(
  def: DeviceNodeDef,
  credentials: DeviceCredentials,
  dpsNode: DpsConfigNode | undefined,
  tpmNode: TpmConfigNode | undefined,
): DeviceSessionConfig {
  if (!dpsNode) throw new NodeConfigurationError("noDps");
  const registrationId = configField(def.registrationId);
  const needRegistrationId = (): string => {
    if (!registrationId) throw new NodeConfigurationError("needRegistrationId");
    return registrationId;
  };
  let attestation: AttestationConfig;
  switch (def.attestation) {
    case "tpm":
      if (!tpmNode) throw new NodeConfigurationError("noTpm");
      attestation = {
        kind: "tpm",
        connection: tpmNode.connectionSpec(),
        ...(registrationId ? { registrationId } : {}),
      };
      break;
    case "symmetricKey":
      if (!credentials.symmetricKey) throw new NodeConfigurationError("noDeviceKey");
      attestation = {
        kind: "symmetricKey",
        registrationId: needRegistrationId(),
        key: credentials.symmetricKey,
      };
      break;
    case "groupKey":
      if (!credentials.groupKey) throw new NodeConfigurationError("noGroupKey");
      attestation = {
        kind: "symmetricKey",
        registrationId: needRegistrationId(),
        groupKey: credentials.groupKey,
      };
      break;
    case "x509": {
      const cert = credentials.certPem?.trim()
        ? credentials.certPem
        : readPem(def.certFile, "readCertificate");
      const key = credentials.keyPem?.trim() ? credentials.keyPem : readPem(def.keyFile, "readPrivateKey");
      if (!cert || !key) throw new NodeConfigurationError("noX509");
      attestation = {
        kind: "x509",
        registrationId: needRegistrationId(),
        cert,
        key,
        ...(credentials.passphrase ? { passphrase: credentials.passphrase } : {}),
      };
      break;
    }
    default:
      throw new NodeConfigurationError("unknownAttestation", { attestation: String(def.attestation) });
  }
  const config: DeviceSessionConfig = { dps: dpsNode.dpsConfig(), attestation };
  const modelId = configField(def.modelId);
  if (modelId) config.modelId = modelId;
  const payload = configField(def.payload);
  if (payload) {
    try {
      config.provisioningPayload = JSON.parse(payload) as Record<string, unknown>;
    } catch {
      throw new NodeConfigurationError("payloadJson");
    }
  }
  config.options = { outboxOverflow: def.outboxOverflow === "reject-new" ? "reject-new" : "drop-oldest" };
  const maxMessages = configField(def.outboxLimit);
  if (maxMessages) {
    const parsed = Number(maxMessages);
    if (!Number.isInteger(parsed) || parsed < 1) throw new NodeConfigurationError("outboxLimitRange");
    config.options.outboxMaxMessages = parsed;
  }
  const maxMegabytes = configField(def.outboxMaxMegabytes);
  if (maxMegabytes) {
    const parsed = Number(maxMegabytes);
    if (!Number.isFinite(parsed) || parsed <= 0) throw new NodeConfigurationError("outboxBytesRange");
    config.options.outboxMaxBytes = Math.max(1, Math.round(parsed * 1024 * 1024));
  }
  const ackTimeout = seconds(def.ackTimeout, "ackTimeoutRange");
  if (ackTimeout !== undefined) config.options.telemetryAckTimeoutMs = ackTimeout;
  const window = configField(def.telemetryWindow);
  if (window) {
    const parsed = Number(window);
    if (!Number.isInteger(parsed) || parsed < 1 || parsed > MAX_TELEMETRY_WINDOW) {
      throw new NodeConfigurationError("windowRange", { max: MAX_TELEMETRY_WINDOW });
    }
    config.options.telemetryWindow = parsed;
  }
  const maxRetryDelay = seconds(def.maxRetryDelay, "retryDelayRange");
  if (maxRetryDelay !== undefined) {
    config.options.backoff = new ExponentialBackoff({
      maxDelayMs: maxRetryDelay,
      initialDelayMs: Math.min(1_000, maxRetryDelay),
    });
  }
  return config;
}

/** An optional field in seconds, as milliseconds; empty means the default. */
function seconds(value: string | number | undefined, messageKey: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 1 || parsed > 3_600) throw new NodeConfigurationError(messageKey);
  return Math.round(parsed * 1000);
}

function readPem(
  field: string | undefined,
  messageKey: "readCertificate" | "readPrivateKey",
): string | undefined {
  const path = configField(field);
  if (!path) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new NodeConfigurationError(messageKey, { path, reason: (error as Error).message });
  }
}
