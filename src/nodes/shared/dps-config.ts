// What the DPS config node holds, turned into the device session's DPS settings.
import { readFileSync } from "node:fs";
import type { Node, NodeDef } from "node-red";
import type { DpsConfig, DpsTransportKind } from "../../device/index.js";
import { ConfigurationError, validateIdScope } from "../../device/index.js";

export interface DpsNodeDef extends NodeDef {
  globalEndpoint: string;
  idScope: string;
  transport: DpsTransportKind;
  caSource: "none" | "text" | "file";
  caFile: string;
}

export interface DpsCredentials {
  caPem?: string;
}

export interface DpsConfigNode extends Node<DpsCredentials> {
  /** The DPS part of a device session's configuration; throws ConfigurationError when unusable. */
  dpsConfig(): DpsConfig;
}

const TRANSPORTS: readonly DpsTransportKind[] = ["amqp", "amqp-ws", "https", "mqtt"];

export function dpsConfigOf(def: DpsNodeDef, credentials: DpsCredentials): DpsConfig {
  const idScope = validateIdScope((def.idScope ?? "").trim());
  const config: DpsConfig = {
    idScope,
    transport: TRANSPORTS.includes(def.transport) ? def.transport : "amqp",
  };
  const endpoint = (def.globalEndpoint ?? "").trim();
  if (endpoint) config.globalEndpoint = endpoint;
  const ca = trustedCa(def, credentials);
  if (ca) config.ca = ca;
  return config;
}

function trustedCa(def: DpsNodeDef, credentials: DpsCredentials): string | undefined {
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
