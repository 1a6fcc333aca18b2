// Typed TPM errors. Every failure of the TPM layer reaches callers as a TpmError: never a throw from a
// socket callback, never an out-of-range crash on a short response.

export type TpmErrorCode =
  /** The TPM answered with a non-zero response code (see `responseCode`). */
  | "TPM_RESPONSE"
  /** The TPM could not be reached or the connection broke (socket or device error). */
  | "TPM_TRANSPORT"
  /** The TPM did not answer within the command timeout. */
  | "TPM_TIMEOUT"
  /** The connection was closed by us while a command was queued or in flight. */
  | "TPM_CLOSED"
  /** The TPM (or the data handed to us) broke the wire format. */
  | "TPM_PROTOCOL"
  /** The caller handed us something unusable (empty data, a malformed activation blob). */
  | "TPM_INVALID_INPUT"
  /** A signature was asked for before an identity key was activated. */
  | "TPM_NOT_ACTIVATED";

export class TpmError extends Error {
  override readonly name = "TpmError";

  constructor(
    readonly code: TpmErrorCode,
    message: string,
    readonly details: { command?: string; responseCode?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }

  get responseCode(): number | undefined {
    return this.details.responseCode;
  }

  get command(): string | undefined {
    return this.details.command;
  }
}

// Part 2 §6.6.3 (format-zero) and §6.6.3 (format-one) codes most often met in attestation.
const FORMAT_ZERO: Record<number, string> = {
  0x100: "TPM_RC_INITIALIZE",
  0x101: "TPM_RC_FAILURE",
  0x103: "TPM_RC_SEQUENCE",
  0x125: "TPM_RC_AUTH_MISSING",
  0x143: "TPM_RC_COMMAND_CODE",
  0x146: "TPM_RC_NV_RANGE",
  0x148: "TPM_RC_NV_LOCKED",
  0x149: "TPM_RC_NV_AUTHORIZATION",
  0x14b: "TPM_RC_NV_SPACE",
  0x14c: "TPM_RC_NV_DEFINED",
  0x155: "TPM_RC_SENSITIVE",
  0x902: "TPM_RC_OBJECT_MEMORY",
  0x903: "TPM_RC_SESSION_MEMORY",
  0x922: "TPM_RC_RETRY",
  0x923: "TPM_RC_NV_UNAVAILABLE",
  0x921: "TPM_RC_LOCKOUT",
};
const FORMAT_ONE: Record<number, string> = {
  0x01: "TPM_RC_ASYMMETRIC",
  0x02: "TPM_RC_ATTRIBUTES",
  0x03: "TPM_RC_HASH",
  0x04: "TPM_RC_VALUE",
  0x05: "TPM_RC_HIERARCHY",
  0x07: "TPM_RC_KEY_SIZE",
  0x08: "TPM_RC_MGF",
  0x09: "TPM_RC_MODE",
  0x0a: "TPM_RC_TYPE",
  0x0b: "TPM_RC_HANDLE",
  0x0c: "TPM_RC_KDF",
  0x0d: "TPM_RC_RANGE",
  0x0e: "TPM_RC_AUTH_FAIL",
  0x0f: "TPM_RC_NONCE",
  0x10: "TPM_RC_PP",
  0x12: "TPM_RC_SCHEME",
  0x15: "TPM_RC_SIZE",
  0x16: "TPM_RC_SYMMETRIC",
  0x17: "TPM_RC_TAG",
  0x18: "TPM_RC_SELECTOR",
  0x1a: "TPM_RC_INSUFFICIENT",
  0x1b: "TPM_RC_SIGNATURE",
  0x1c: "TPM_RC_KEY",
  0x1d: "TPM_RC_POLICY_FAIL",
  0x1f: "TPM_RC_INTEGRITY",
  0x20: "TPM_RC_TICKET",
  0x21: "TPM_RC_RESERVED_BITS",
  0x22: "TPM_RC_BAD_AUTH",
  0x23: "TPM_RC_EXPIRED",
  0x24: "TPM_RC_POLICY_CC",
  0x25: "TPM_RC_BINDING",
  0x26: "TPM_RC_CURVE",
  0x27: "TPM_RC_ECC_POINT",
};

/** True for format-one codes (bit 7 set): they name a parameter, handle or session. */
export function isFormatOne(responseCode: number): boolean {
  return (responseCode & 0x80) !== 0;
}

/** The code without its parameter/handle/session number, e.g. 0x18b -> 0x08b (TPM_RC_HANDLE). */
export function baseResponseCode(responseCode: number): number {
  return isFormatOne(responseCode) ? (responseCode & 0x3f) | 0x80 : responseCode;
}

/** A readable name for a response code, e.g. "TPM_RC_INTEGRITY (parameter 1)". */
export function describeResponseCode(responseCode: number): string {
  const hex = `0x${responseCode.toString(16)}`;
  if (isFormatOne(responseCode)) {
    const name = FORMAT_ONE[responseCode & 0x3f] ?? "TPM_RC_UNKNOWN";
    const number = (responseCode >> 8) & 0x7;
    const where =
      (responseCode & 0x40) !== 0
        ? ` (parameter ${(responseCode >> 8) & 0xf})`
        : number === 0
          ? ""
          : (responseCode & 0x800) !== 0
            ? ` (session ${number})`
            : ` (handle ${number})`;
    return `${name}${where}, ${hex}`;
  }
  const warningOrError = FORMAT_ZERO[responseCode & 0xfff] ?? "TPM_RC_UNKNOWN";
  return `${warningOrError}, ${hex}`;
}
