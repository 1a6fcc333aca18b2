// The editor's "Read TPM identity" request, checked before anything is opened: a device path is accepted only
// when it names a TPM character device, and no answer ever carries bytes read from the target or the value
// of an environment variable the fields referred to.
import { stat } from "node:fs/promises";
import { describeError } from "../../device/index.js";
import type { TpmConnectionSpec } from "../../tpm/index.js";
import { connectionSpecOf, readTpmIdentity, type TpmIdentity } from "./tpm-config.js";

export interface IdentityAnswer {
  status: number;
  body: TpmIdentity | { message: string };
  /** For the runtime's log only (the administrator's eyes), never for the HTTP answer. */
  logDetail?: string;
}

/**
 * Answers one request. `lookupEnv` resolves a field of the form `${NAME}` (as the runtime does for deployed
 * nodes); a request that used one gets texts that name the field, never the value.
 */
export async function answerIdentityRequest(
  fields: Record<string, unknown>,
  lookupEnv: (name: string) => string | undefined,
  read: (spec: TpmConnectionSpec) => Promise<TpmIdentity> = readTpmIdentity,
): Promise<IdentityAnswer> {
  const resolved: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    const reference = typeof value === "string" ? /^\$\{(\w+)\}$/.exec(value.trim()) : null;
    if (!reference?.[1]) {
      resolved[name] = value;
      continue;
    }
    const found = lookupEnv(reference[1]);
    if (found === undefined) {
      return refuse(400, `environment variable ${reference[1]} is not set`);
    }
    resolved[name] = found;
  }
  let spec: TpmConnectionSpec;
  try {
    spec = connectionSpecOf(resolved);
  } catch (error) {
    return refuse(400, (error as Error).message);
  }
  if (spec.kind === "device") {
    const refusal = await checkDevicePath(spec.path);
    if (refusal) return refuse(400, refusal);
  }
  try {
    return { status: 200, body: await read(spec) };
  } catch (error) {
    return { ...refuse(502, describeReadFailure(error)), logDetail: describeError(error) };
  }
}

/** Why `path` is not a TPM device, or undefined when it is one; nothing is opened or read. */
async function checkDevicePath(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  const notTpm = "the device path must be a TPM device: /dev/tpmrm<N> or /dev/tpm<N>";
  const info = await stat(path).catch(() => undefined);
  if (!info)
    return `no TPM at ${path}: the device does not exist (is the TPM enabled and its driver loaded?)`;
  return info.isCharacterDevice() ? undefined : notTpm;
}

/** A fixed text per kind of failure: TPM and socket messages can quote hosts, ports and values. */
function describeReadFailure(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; cause?: { code?: unknown } };
  if (e.name === "TpmError") {
    switch (e.code) {
      case "TPM_TIMEOUT":
        return "the TPM did not answer in time (is another program using it?)";
      case "TPM_TRANSPORT":
        return transportText(e.cause?.code);
      case "TPM_RESPONSE":
        return "the TPM refused the command (see the Node-RED log)";
      default:
        return "the TPM could not be read (see the Node-RED log)";
    }
  }
  return "the TPM could not be read (see the Node-RED log)";
}

function transportText(code: unknown): string {
  switch (code) {
    case "EACCES":
    case "EPERM":
      return "no permission to open the TPM device: add the Node-RED user to the tss group";
    case "EBUSY":
      return "the TPM device is busy (use /dev/tpmrm0, the kernel's resource manager)";
    case "ECONNREFUSED":
      return "nothing listens at the TPM simulator's host and port";
    default:
      return "cannot reach the TPM (see the Node-RED log)";
  }
}

function refuse(status: number, message: string): IdentityAnswer {
  return { status, body: { message } };
}
