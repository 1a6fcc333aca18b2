// What the DPS service config node holds: the service connection string (a credential), the endpoint to
// connect to when it differs from the connection string's host, and a CA to trust besides the system ones.
import { readFileSync } from "node:fs";
import type { Node, NodeDef } from "node-red";
import type { DpsServiceClient, DpsServiceClientOptions } from "../../enrollment/index.js";
import { ConfigurationError } from "../../device/index.js";

export interface DpsServiceNodeDef extends NodeDef {
  /** Name of an environment variable that holds the connection string, when the credential is empty. */
  connectionStringEnv: string;
  endpoint: string;
  caSource: "none" | "text" | "file";
  caFile: string;
  timeout: string | number;
}

export interface DpsServiceCredentials {
  connectionString?: string;
  caPem?: string;
}

export interface DpsServiceConfigNode extends Node<DpsServiceCredentials> {
  /** The node's one client (made on first use); throws ConfigurationError when the configuration is unusable. */
  serviceClient(): DpsServiceClient;
}

export function serviceOptionsOf(
  def: DpsServiceNodeDef,
  credentials: DpsServiceCredentials,
): DpsServiceClientOptions {
  const connectionString = connectionStringOf(def, credentials);
  const options: DpsServiceClientOptions = { connectionString };
  if (def.endpoint?.trim()) options.endpoint = def.endpoint.trim();
  const ca = trustedCa(def, credentials);
  if (ca) options.ca = ca;
  const seconds = Number(def.timeout);
  if (Number.isFinite(seconds) && seconds > 0) options.timeoutMs = Math.round(seconds * 1000);
  return options;
}

/** The credential, or else the environment variable it names (containers keep secrets there). */
function connectionStringOf(def: DpsServiceNodeDef, credentials: DpsServiceCredentials): string {
  const fromCredentials = (credentials.connectionString ?? "").trim();
  if (fromCredentials) return fromCredentials;
  const variable = (def.connectionStringEnv ?? "").trim();
  if (!variable) throw new ConfigurationError("no DPS service connection string set (credentials)");
  const fromEnvironment = (process.env[variable] ?? "").trim();
  if (!fromEnvironment) {
    throw new ConfigurationError(
      `the environment variable ${variable} (DPS service connection string) is not set`,
    );
  }
  return fromEnvironment;
}

function trustedCa(def: DpsServiceNodeDef, credentials: DpsServiceCredentials): string | undefined {
  let pem: string | undefined;
  if (def.caSource === "text") pem = credentials.caPem;
  if (def.caSource === "file" && def.caFile?.trim()) {
    try {
      pem = readFileSync(def.caFile.trim(), "utf8");
    } catch (error) {
      throw new ConfigurationError(
        `cannot read the trusted CA file ${def.caFile}: ${(error as Error).message}`,
      );
    }
  }
  if (pem === undefined || pem.trim() === "") return undefined;
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigurationError("the trusted CA is not a PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  return pem;
}
