/** Where a TPM is: a plain object, so it can live in a Node-RED config node or a JSON file. */
export type TpmConnectionSpec =
  /** A Linux TPM character device. Default: /dev/tpmrm0 (kernel resource manager), then /dev/tpm0. */
  | { kind: "device"; path?: string }
  /** The Microsoft TPM 2.0 simulator protocol: command port `port`, platform port `port + 1`. */
  | { kind: "mssim"; host: string; port: number }
  /** swtpm's raw TCP data port plus its control channel (used to initialise the TPM). */
  | { kind: "swtpm"; host: string; port: number; ctrlPort: number };

export const DEFAULT_DEVICE_PATHS = ["/dev/tpmrm0", "/dev/tpm0"] as const;

/** A short, secret-free description for logs, errors and status text. */
export function describeConnection(spec: TpmConnectionSpec): string {
  switch (spec.kind) {
    case "device":
      return spec.path ?? DEFAULT_DEVICE_PATHS.join(" or ");
    case "mssim":
      return `TPM simulator ${spec.host}:${spec.port}`;
    case "swtpm":
      return `swtpm ${spec.host}:${spec.port}`;
  }
}
