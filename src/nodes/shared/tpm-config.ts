// What the TPM config node holds: the connection object, and reading the TPM identity for the editor.
import type { Node, NodeDef } from "node-red";
import type { TpmConnectionSpec } from "../../tpm/index.js";
import { TpmSecurityClient } from "../../tpm/index.js";
import { configField } from "./config-field.js";
import { NodeConfigurationError } from "./messages.js";

export interface TpmNodeDef extends NodeDef {
  kind: "device" | "swtpm" | "mssim";
  devicePath: string;
  host: string;
  port: string | number;
  ctrlPort: string | number;
}

export interface TpmConfigNode extends Node {
  /** The connection object our TPM client takes; throws ConfigurationError when unusable. */
  connectionSpec(): TpmConnectionSpec;
}

export interface TpmIdentity {
  registrationId: string;
  endorsementKey: string;
  enrollmentCommand: string;
}

const IDENTITY_TIMEOUT_MS = 10_000;

/** /dev/tpm0, /dev/tpmrm0, ...: the only device paths a TPM lives at on Linux. */
export const TPM_DEVICE_PATH = /^\/dev\/tpm(rm)?\d{1,3}$/;

export function connectionSpecOf(def: Partial<TpmNodeDef>): TpmConnectionSpec {
  const kind = configField(def.kind) || "device";
  if (kind === "device") {
    const path = configField(def.devicePath);
    // Our TPM client writes commands to this path: never to anything but a TPM.
    if (path && !TPM_DEVICE_PATH.test(path)) throw new NodeConfigurationError("notTpmDevice");
    return path ? { kind, path } : { kind };
  }
  if (kind !== "swtpm" && kind !== "mssim") throw new NodeConfigurationError("unknownTpmKind", { kind });
  const host = configField(def.host) || "127.0.0.1";
  const port = portNumber(def.port, "tpmPort");
  if (kind === "mssim") return { kind, host, port };
  return { kind, host, port, ctrlPort: portNumber(def.ctrlPort, "tpmControlPort") };
}

function portNumber(value: unknown, messageKey: "tpmPort" | "tpmControlPort"): number {
  const text = configField(value);
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) throw new NodeConfigurationError(messageKey);
  return port;
}

/** Reads the TPM's registration id and EK (creating the EK on a blank TPM, as provisioning would). */
export async function readTpmIdentity(spec: TpmConnectionSpec): Promise<TpmIdentity> {
  const client = new TpmSecurityClient(spec, { commandTimeoutMs: IDENTITY_TIMEOUT_MS });
  try {
    const endorsementKey = (await client.getEndorsementKey()).toString("base64");
    const registrationId = await client.getRegistrationId();
    return {
      registrationId,
      endorsementKey,
      enrollmentCommand:
        `az iot dps enrollment create --dps-name <DPS name> --resource-group <resource group> ` +
        `--enrollment-id ${registrationId} --attestation-type tpm --endorsement-key "${endorsementKey}"`,
    };
  } finally {
    await client.close();
  }
}
