import { TpmError } from "../errors.js";
import { SocketChannel } from "./socket-channel.js";
import type { TpmTransport } from "./transport.js";

// Microsoft TPM 2.0 simulator TCP protocol (TpmTcpProtocol.h in microsoft/ms-tpm-20-ref):
// command port: HandShake, SendCommand, SessionEnd; platform port (command port + 1): power and NV signals.
const SIGNAL_POWER_ON = 1;
const SEND_COMMAND = 8;
const SIGNAL_NV_ON = 11;
const HAND_SHAKE = 15;
const SESSION_END = 20;
const CLIENT_VERSION = 1;

const u32 = (...values: number[]): Buffer => {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v, 4 * i));
  return b;
};
const fixedLength =
  (length: number) =>
  (b: Buffer): number | undefined =>
    b.length >= length ? length : undefined;

/** The simulator wraps responses as [u32 length][response][u32 ack]. */
const simulatorResponseLength = (b: Buffer): number | undefined => {
  if (b.length < 4) return undefined;
  const total = 4 + b.readUInt32BE(0) + 4;
  return b.length >= total ? total : undefined;
};

export class MssimTransport implements TpmTransport {
  readonly needsStartup = true;

  private constructor(
    private readonly command: SocketChannel,
    private readonly label: string,
  ) {}

  static async open(host: string, port: number, timeoutMs: number): Promise<MssimTransport> {
    const label = `TPM simulator ${host}:${port}`;
    await powerOn(host, port + 1, timeoutMs);
    const command = await SocketChannel.connect(host, port, label, timeoutMs);
    try {
      const reply = await command.exchange(u32(HAND_SHAKE, CLIENT_VERSION), fixedLength(12), timeoutMs);
      const serverVersion = reply.readUInt32BE(0);
      const ack = reply.readUInt32BE(8);
      if (ack !== 0 || serverVersion !== CLIENT_VERSION) {
        throw new TpmError(
          "TPM_PROTOCOL",
          `${label}: handshake refused (version ${serverVersion}, ack ${ack})`,
        );
      }
    } catch (error) {
      await command.close();
      throw error;
    }
    return new MssimTransport(command, label);
  }

  get usable(): boolean {
    return this.command.usable;
  }

  async transmit(command: Buffer, timeoutMs: number): Promise<Buffer> {
    const frame = Buffer.concat([
      u32(SEND_COMMAND),
      Buffer.from([0 /* locality */]),
      u32(command.length),
      command,
    ]);
    const reply = await this.command.exchange(frame, simulatorResponseLength, timeoutMs);
    const length = reply.readUInt32BE(0);
    const ack = reply.readUInt32BE(4 + length);
    if (ack !== 0) throw new TpmError("TPM_PROTOCOL", `${this.label}: command not acknowledged (${ack})`);
    return reply.subarray(4, 4 + length);
  }

  async close(): Promise<void> {
    this.command.send(u32(SESSION_END));
    await this.command.close();
  }
}

async function powerOn(host: string, platformPort: number, timeoutMs: number): Promise<void> {
  const label = `TPM simulator platform port ${host}:${platformPort}`;
  const platform = await SocketChannel.connect(host, platformPort, label, timeoutMs);
  try {
    for (const signal of [SIGNAL_POWER_ON, SIGNAL_NV_ON]) {
      const ack = (await platform.exchange(u32(signal), fixedLength(4), timeoutMs)).readUInt32BE(0);
      if (ack !== 0) throw new TpmError("TPM_PROTOCOL", `${label}: signal ${signal} refused (${ack})`);
    }
    platform.send(u32(SESSION_END));
  } finally {
    await platform.close();
  }
}
