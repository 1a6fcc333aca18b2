// What the DPS config node holds, turned into the device session's DPS settings.
import { readFileSync } from "node:fs";
import type { Node, NodeDef } from "node-red";
import type { DpsConfig, DpsTransportKind } from "../../device/index.js";
import { validateIdScope } from "../../device/index.js";
import { configField } from "./config-field.js";
import { NodeConfigurationError } from "./messages.js";

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
  const idScope = validateIdScope(configField(def.idScope));
  const config: DpsConfig = {
    idScope,
    transport: TRANSPORTS.includes(def.transport) ? def.transport : "amqp",
  };
  const endpoint = configField(def.globalEndpoint);
  if (endpoint) config.globalEndpoint = endpoint;
  const ca = trustedCa(def, credentials);
  if (ca) config.ca = ca;
  return config;
}

function trustedCa(def: DpsNodeDef, credentials: DpsCredentials): string | undefined {
  let pem: string | undefined;
  if (def.caSource === "text") pem = credentials.caPem;
  const caFile = def.caSource === "file" ? configField(def.caFile) : "";
  if (caFile) {
    try {
      pem = readFileSync(caFile, "utf8");
    } catch (error) {
      throw new NodeConfigurationError("readCa", { path: caFile, reason: (error as Error).message });
    }
  }
  if (pem === undefined || pem.trim() === "") return undefined;
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new NodeConfigurationError("caNotPem");
  return pem;
}
