// What the TPM config node holds: the connection object, and reading the TPM identity for the editor.
import type { Node, NodeDef } from "node-red";
import { ConfigurationError } from "../../device/index.js";
import type { TpmConnectionSpec } from "../../tpm/index.js";
import { TpmSecurityClient } from "../../tpm/index.js";

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
  const kind = def.kind ?? "device";
  if (kind === "device") {
    const path = (def.devicePath ?? "").trim();
    // Our TPM client writes commands to this path: never to anything but a TPM.
    if (path && !TPM_DEVICE_PATH.test(path)) {
      throw new ConfigurationError("the device path must be a TPM device: /dev/tpmrm<N> or /dev/tpm<N>");
    }
    return path ? { kind, path } : { kind };
  }
  if (kind !== "swtpm" && kind !== "mssim")
    throw new ConfigurationError(`unknown TPM kind "${String(kind)}"`);
  const host = (def.host ?? "").trim() || "127.0.0.1";
  const port = portNumber(def.port, "port");
  if (kind === "mssim") return { kind, host, port };
  return { kind, host, port, ctrlPort: portNumber(def.ctrlPort, "control port") };
}

function portNumber(value: unknown, what: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigurationError(`the TPM ${what} must be a number from 1 to 65535`);
  }
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
