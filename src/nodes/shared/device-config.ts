// What the device config node holds, turned into a device session configuration.
import { readFileSync } from "node:fs";
import type { NodeDef } from "node-red";
import {
  ConnectionStringError,
  ExponentialBackoff,
  HUB_TRANSPORTS,
  parseDeviceConnectionString,
  type AttestationConfig,
  type ConnectionStringProblem,
  type DeviceSessionConfig,
  type HubTransportKind,
  type ProxyConfig,
} from "../../device/index.js";
import { configField } from "./config-field.js";
import type { DpsConfigNode } from "./dps-config.js";
import { NodeConfigurationError } from "./messages.js";
import type { TpmConfigNode } from "./tpm-config.js";

/** Where the device's hub identity comes from: DPS, a device connection string, or hub + X.509 certificate. */
export type IdentitySource = "dps" | "connectionString" | "x509Hub";

export interface DeviceNodeDef extends NodeDef {
  /** Default "dps" (a device configured before the field existed). */
  identity?: IdentitySource;
  /** Without DPS (x509Hub): the hub's host name and the device id. */
  hubHostName?: string;
  deviceId?: string;
  /** Default "amqp". */
  hubTransport?: HubTransportKind;
  /** HTTP proxy: none (default), the environment (HTTPS_PROXY / NO_PROXY), or a core "http proxy" node. */
  proxyMode?: "none" | "env" | "node";
  /** The "http proxy" config node, for proxyMode "node". */
  proxy?: string;
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
  /** Without DPS: HostName=...;DeviceId=...;SharedAccessKey=... */
  connectionString?: string;
  /** Without DPS: an extra trusted CA for the hub (PEM), e.g. a TLS-inspecting proxy's or the emulator's. */
  hubCaPem?: string;
  symmetricKey?: string;
  groupKey?: string;
  certPem?: string;
  keyPem?: string;
  passphrase?: string;
}

/**
 * Node-RED core's "http proxy" config node (url, no-proxy list, username and password as credentials): the one
 * integrators already keep for their http request nodes.
 */
export interface HttpProxyNode {
  url?: string;
  noproxy?: string[];
  credentials?: { username?: string; password?: string };
}

function proxyOf(def: DeviceNodeDef, proxyNode: HttpProxyNode | undefined): ProxyConfig | undefined {
  switch (def.proxyMode ?? "none") {
    case "none":
      return undefined;
    case "env":
      return { fromEnvironment: true };
    case "node": {
      const url = configField(proxyNode?.url);
      if (!proxyNode || !url) throw new NodeConfigurationError("noProxy");
      const { username, password } = proxyNode.credentials ?? {};
      return {
        url,
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
        ...(proxyNode.noproxy?.length ? { noProxy: proxyNode.noproxy } : {}),
      };
    }
    default:
      throw new NodeConfigurationError("unknownProxyMode", { mode: String(def.proxyMode) });
  }
}

/** More in flight buys nothing measurable (README "Performance") and holds more for re-sending. */
const MAX_TELEMETRY_WINDOW = 1000;

/** The session configuration a device node describes; throws ConfigurationError with a clear message. */
export function sessionConfigOf(
  def: DeviceNodeDef,
  credentials: DeviceCredentials,
  dpsNode: DpsConfigNode | undefined,
  tpmNode: TpmConfigNode | undefined,
  proxyNode?: HttpProxyNode,
): DeviceSessionConfig {
  const identity = def.identity ?? "dps";
  const hubTransport = def.hubTransport || "amqp";
  if (!HUB_TRANSPORTS.includes(hubTransport)) {
    throw new NodeConfigurationError("unknownHubTransport", { transport: String(hubTransport) });
  }
  let config: DeviceSessionConfig;
  switch (identity) {
    case "dps":
      config = { dps: dpsSettings(dpsNode), attestation: dpsAttestation(def, credentials, tpmNode) };
      break;
    case "connectionString":
      config = connectionStringConfig(credentials);
      break;
    case "x509Hub":
      config = x509HubConfig(def, credentials);
      break;
    default:
      throw new NodeConfigurationError("unknownIdentity", { identity: String(identity) });
  }
  config.hub = { ...config.hub, transport: hubTransport };
  const proxy = proxyOf(def, proxyNode);
  if (proxy) config.proxy = proxy;
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

function dpsSettings(dpsNode: DpsConfigNode | undefined) {
  if (!dpsNode) throw new NodeConfigurationError("noDps");
  return dpsNode.dpsConfig();
}

/** How the device proves itself to DPS. */
function dpsAttestation(
  def: DeviceNodeDef,
  credentials: DeviceCredentials,
  tpmNode: TpmConfigNode | undefined,
): AttestationConfig {
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
    case "x509":
      attestation = x509Attestation(def, credentials, needRegistrationId());
      break;
    default:
      throw new NodeConfigurationError("unknownAttestation", { attestation: String(def.attestation) });
  }
  return attestation;
}

function x509Attestation(
  def: DeviceNodeDef,
  credentials: DeviceCredentials,
  registrationId: string,
): AttestationConfig {
  const cert = credentials.certPem?.trim() ? credentials.certPem : readPem(def.certFile, "readCertificate");
  const key = credentials.keyPem?.trim() ? credentials.keyPem : readPem(def.keyFile, "readPrivateKey");
  if (!cert || !key) throw new NodeConfigurationError("noX509");
  return {
    kind: "x509",
    registrationId,
    cert,
    key,
    ...(credentials.passphrase ? { passphrase: credentials.passphrase } : {}),
  };
}

/** The catalog text of each problem, so that it reads in the runtime's language. */
const CONNECTION_STRING_PROBLEM: Readonly<Record<ConnectionStringProblem, string>> = {
  empty: "noConnectionString",
  notPairs: "connectionStringNotPairs",
  missing: "connectionStringMissing",
  moduleId: "connectionStringModule",
  signature: "connectionStringSignature",
  x509: "connectionStringX509",
  edge: "connectionStringEdge",
  hubPolicy: "connectionStringHubPolicy",
};

/** Without DPS, from a device connection string (a Node-RED credential). Its problems never quote it. */
function connectionStringConfig(credentials: DeviceCredentials): DeviceSessionConfig {
  if (!credentials.connectionString?.trim()) throw new NodeConfigurationError("noConnectionString");
  let parsed;
  try {
    parsed = parseDeviceConnectionString(credentials.connectionString);
  } catch (error) {
    if (!(error instanceof ConnectionStringError)) throw error;
    throw new NodeConfigurationError(CONNECTION_STRING_PROBLEM[error.problem], {
      parts: error.missing.join(", "),
    });
  }
  return {
    hub: { direct: { hostName: parsed.hostName, deviceId: parsed.deviceId }, ...hubCa(credentials) },
    attestation: { kind: "symmetricKey", registrationId: parsed.deviceId, key: parsed.sharedAccessKey },
  };
}

/** Without DPS: the hub host name and device id with the device's X.509 certificate. */
function x509HubConfig(def: DeviceNodeDef, credentials: DeviceCredentials): DeviceSessionConfig {
  const hostName = configField(def.hubHostName);
  const deviceId = configField(def.deviceId);
  if (!hostName) throw new NodeConfigurationError("noHubHostName");
  if (!deviceId) throw new NodeConfigurationError("noDeviceId");
  return {
    hub: { direct: { hostName, deviceId }, ...hubCa(credentials) },
    attestation: x509Attestation(def, credentials, deviceId),
  };
}

function hubCa(credentials: DeviceCredentials): { ca?: string } {
  const pem = credentials.hubCaPem;
  if (pem === undefined || pem.trim() === "") return {};
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new NodeConfigurationError("caNotPem");
  return { ca: pem };
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
