// The editor's "Read TPM identity" request, checked before anything is opened: a device path is accepted only
// when it names a TPM character device, and no answer ever carries bytes read from the target or the value
// of an environment variable the fields referred to. Answers are message keys (azure-iot.error.*), so the
// node can give them in the editor's language.
import { stat } from "node:fs/promises";
import { describeError } from "../../device/index.js";
import type { TpmConnectionSpec } from "../../tpm/index.js";
import type { MessageParams } from "./messages.js";
import { connectionSpecOf, readTpmIdentity, type TpmIdentity } from "./tpm-config.js";

export type IdentityAnswer =
  | { status: 200; body: TpmIdentity }
  | {
      status: 400 | 502;
      /** Why, as a message key and its parameters; never a value read from the target or the environment. */
      problem: { key: string; params?: MessageParams } | { error: Error };
      /** For the runtime's log only (the administrator's eyes), never for the HTTP answer. */
      logDetail?: string;
    };

/**
 * Answers one request. `lookupEnv` resolves a field of the form `${NAME}` (as the runtime does for deployed
 * nodes); one that is not set stays as it is and is reported by name.
 */
export async function answerIdentityRequest(
  fields: Record<string, unknown>,
  lookupEnv: (name: string) => string | undefined,
  read: (spec: TpmConnectionSpec) => Promise<TpmIdentity> = readTpmIdentity,
): Promise<IdentityAnswer> {
  const resolved: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    const reference = typeof value === "string" ? /^\$\{(\w+)\}$/.exec(value.trim()) : null;
    resolved[name] = reference?.[1] !== undefined ? (lookupEnv(reference[1]) ?? value) : value;
  }
  let spec: TpmConnectionSpec;
  try {
    spec = connectionSpecOf(resolved);
  } catch (error) {
    // Our configuration errors name the field, never its value.
    return { status: 400, problem: { error: error as Error } };
  }
  if (spec.kind === "device" && spec.path !== undefined) {
    const info = await stat(spec.path).catch(() => undefined);
    if (!info) return { status: 400, problem: { key: "tpmMissing", params: { path: spec.path } } };
    if (!info.isCharacterDevice()) return { status: 400, problem: { key: "notTpmDevice" } };
  }
  try {
    return { status: 200, body: await read(spec) };
  } catch (error) {
    return { status: 502, problem: { key: readFailureKey(error) }, logDetail: describeError(error) };
  }
}

/** A fixed text per kind of failure: TPM and socket messages can quote hosts, ports and values. */
function readFailureKey(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; cause?: { code?: unknown } };
  if (e.name !== "TpmError") return "tpmUnreadable";
  switch (e.code) {
    case "TPM_TIMEOUT":
      return "tpmTimeout";
    case "TPM_RESPONSE":
      return "tpmRefused";
    case "TPM_TRANSPORT":
      switch (e.cause?.code) {
        case "EACCES":
        case "EPERM":
          return "tpmNoPermission";
        case "EBUSY":
          return "tpmBusy";
        case "ECONNREFUSED":
          return "tpmNothingListens";
        default:
          return "tpmUnreachable";
      }
    default:
      return "tpmUnreadable";
  }
}
