// What the device config node holds, turned into a device session configuration.
import { readFileSync } from "node:fs";
import type { NodeDef } from "node-red";
import {
  ConfigurationError,
  ExponentialBackoff,
  type AttestationConfig,
  type DeviceSessionConfig,
} from "../../device/index.js";
import type { DpsConfigNode } from "./dps-config.js";
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
  outboxLimit: string | number;
  outboxOverflow: "drop-oldest" | "reject-new";
  /** Seconds the hub may take to accept a telemetry message before it is sent again. Default 30. */
  ackTimeout?: string | number;
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

/** The session configuration a device node describes; throws ConfigurationError with a clear message. */
export function sessionConfigOf(
  def: DeviceNodeDef,
  credentials: DeviceCredentials,
  dpsNode: DpsConfigNode | undefined,
  tpmNode: TpmConfigNode | undefined,
): DeviceSessionConfig {
  if (!dpsNode) throw new ConfigurationError("no DPS configuration selected");
  const registrationId = (def.registrationId ?? "").trim();
  const needRegistrationId = (): string => {
    if (!registrationId) throw new ConfigurationError("a registration ID is needed for this attestation");
    return registrationId;
  };
  let attestation: AttestationConfig;
  switch (def.attestation) {
    case "tpm":
      if (!tpmNode) throw new ConfigurationError("no TPM configuration selected");
      attestation = {
        kind: "tpm",
        connection: tpmNode.connectionSpec(),
        ...(registrationId ? { registrationId } : {}),
      };
      break;
    case "symmetricKey":
      if (!credentials.symmetricKey) throw new ConfigurationError("no device key set");
      attestation = {
        kind: "symmetricKey",
        registrationId: needRegistrationId(),
        key: credentials.symmetricKey,
      };
      break;
    case "groupKey":
      if (!credentials.groupKey) throw new ConfigurationError("no group key set");
      attestation = {
        kind: "symmetricKey",
        registrationId: needRegistrationId(),
        groupKey: credentials.groupKey,
      };
      break;
    case "x509": {
      const cert = credentials.certPem?.trim() ? credentials.certPem : readPem(def.certFile, "certificate");
      const key = credentials.keyPem?.trim() ? credentials.keyPem : readPem(def.keyFile, "private key");
      if (!cert || !key) throw new ConfigurationError("no X.509 certificate or private key set");
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
      throw new ConfigurationError(`unknown attestation "${String(def.attestation)}"`);
  }
  const config: DeviceSessionConfig = { dps: dpsNode.dpsConfig(), attestation };
  if (def.modelId?.trim()) config.modelId = def.modelId.trim();
  if (def.payload?.trim()) {
    try {
      config.provisioningPayload = JSON.parse(def.payload) as Record<string, unknown>;
    } catch {
      throw new ConfigurationError("the DPS payload is not valid JSON");
    }
  }
  const outboxCapacity = Number(def.outboxLimit);
  config.options = {
    outboxCapacity: Number.isInteger(outboxCapacity) && outboxCapacity > 0 ? outboxCapacity : 1000,
    outboxOverflow: def.outboxOverflow === "reject-new" ? "reject-new" : "drop-oldest",
  };
  const ackTimeout = seconds(def.ackTimeout, "acknowledgement timeout");
  if (ackTimeout !== undefined) config.options.telemetryAckTimeoutMs = ackTimeout;
  const maxRetryDelay = seconds(def.maxRetryDelay, "longest retry delay");
  if (maxRetryDelay !== undefined) {
    config.options.backoff = new ExponentialBackoff({
      maxDelayMs: maxRetryDelay,
      initialDelayMs: Math.min(1_000, maxRetryDelay),
    });
  }
  return config;
}

/** An optional field in seconds, as milliseconds; empty means the default. */
function seconds(value: string | number | undefined, what: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 1 || parsed > 3_600) {
    throw new ConfigurationError(`the ${what} must be a number of seconds from 1 to 3600`);
  }
  return Math.round(parsed * 1000);
}

function readPem(path: string | undefined, what: string): string | undefined {
  if (!path?.trim()) return undefined;
  try {
    return readFileSync(path.trim(), "utf8");
  } catch (error) {
    throw new ConfigurationError(`cannot read the ${what} file ${path}: ${(error as Error).message}`);
  }
}
