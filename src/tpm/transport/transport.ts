/** Moves one TPM command to the TPM and its response back. One command at a time (the caller queues). */
export interface TpmTransport {
  /** Sends a complete command (header included) and resolves with the complete response. */
  transmit(command: Buffer, timeoutMs: number): Promise<Buffer>;
  /** Releases the socket or file descriptor. Safe to call more than once. */
  close(): Promise<void>;
  /** False once the transport failed or was closed; the owner then opens a new one. */
  readonly usable: boolean;
}

/** Size of a complete TPM response in `buffer` (from its header), or undefined while incomplete. */
export function tpmResponseLength(buffer: Buffer): number | undefined {
  if (buffer.length < 10) return undefined;
  const size = buffer.readUInt32BE(2);
  return buffer.length >= size ? size : undefined;
}
