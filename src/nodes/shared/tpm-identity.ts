// Reading a TPM's identity for the tpm identity node: registration id, endorsement key and what the TPM says
// about itself; and a failure turned into a sentence a station operator can act on.
import type { TpmConnectionSpec, TpmInfo } from "../../tpm/index.js";
import { describeConnection, TpmError, TpmSecurityClient } from "../../tpm/index.js";
import { connectionSpecOf } from "./tpm-config.js";

export interface TpmIdentityReading {
  registrationId: string;
  /** base64 TPM2B_PUBLIC of the EK, as DPS takes it. */
  endorsementKey: string;
  info: TpmInfo;
}

/** Reads the identity (creating the EK on a blank TPM, as provisioning would) and the TPM's own description. */
export async function readIdentityAndInfo(
  spec: TpmConnectionSpec,
  timeoutMs: number,
): Promise<TpmIdentityReading> {
  const client = new TpmSecurityClient(spec, { commandTimeoutMs: timeoutMs });
  try {
    const endorsementKey = (await client.getEndorsementKey()).toString("base64");
    const registrationId = await client.getRegistrationId();
    const info = await client.getTpmInfo();
    return { registrationId, endorsementKey, info };
  } finally {
    await client.close();
  }
}

/** msg.tpmConnection (same fields as the TPM config node) -> a connection; throws with a clear text. */
export function connectionFromMessage(value: unknown): TpmConnectionSpec {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      'msg.tpmConnection must be an object like {"kind":"device","devicePath":"/dev/tpmrm0"} or ' +
        '{"kind":"swtpm","host":"127.0.0.1","port":2321,"ctrlPort":2322}',
    );
  }
  return connectionSpecOf(value);
}

/** A failure to read the TPM, said plainly: which TPM, what went wrong, what to do. */
export function describeTpmFailure(error: unknown, spec: TpmConnectionSpec, timeoutMs: number): string {
  const where = describeConnection(spec);
  const text = error instanceof Error ? error.message : String(error);
  if (!(error instanceof TpmError)) return `reading the TPM ${where} failed: ${text}`;
  switch (error.code) {
    case "TPM_TRANSPORT":
      if (/permission denied|EACCES|EPERM/i.test(text)) {
        const advice = /tss/.test(text)
          ? ""
          : ': give the Node-RED user access to the TPM device (usually the "tss" group)';
        return `no permission to use the TPM (${text})${advice}`;
      }
      if (/EBUSY/i.test(text)) {
        return `the TPM is busy (${text}): another program holds it; use /dev/tpmrm0, the kernel's resource manager, which shares the TPM`;
      }
      if (/no such device|ENOENT|ENXIO|ENODEV/i.test(text)) {
        return `no TPM found (${text}): check that the board has a TPM 2.0 enabled, and the device path`;
      }
      if (/ECONNREFUSED/i.test(text)) {
        return `no TPM answers at ${where} (connection refused): is the TPM simulator / swtpm running on that port?`;
      }
      return `cannot reach the TPM ${where}: ${text}`;
    case "TPM_TIMEOUT":
      return (
        `the TPM ${where} did not answer within ${Math.round(timeoutMs / 1000)} s: it is busy ` +
        `(another client is using it; a TCP TPM serves one client at a time) or hung`
      );
    case "TPM_RESPONSE":
      return `the TPM ${where} refused a command: ${text}`;
    default:
      return `reading the TPM ${where} failed: ${text}`;
  }
}
