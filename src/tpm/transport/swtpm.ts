import { TpmError } from "../errors.js";
import { SocketChannel } from "./socket-channel.js";
import { tpmResponseLength, type TpmTransport } from "./transport.js";

// swtpm control channel commands (swtpm include/swtpm/tpm_ioctl.h): CMD_INIT = 2 performs _TPM_Init.
const CMD_INIT = 0x00000002;

/**
 * swtpm over TCP: raw TPM commands on the data port; the control port initialises the TPM on open, which
 * also clears sessions and transient objects a previous client may have left behind.
 */
export class SwtpmTransport implements TpmTransport {
  readonly needsStartup = true;

  private constructor(private readonly data: SocketChannel) {}

  static async open(
    host: string,
    port: number,
    ctrlPort: number,
    timeoutMs: number,
  ): Promise<SwtpmTransport> {
    await initialise(host, ctrlPort, timeoutMs);
    const data = await SocketChannel.connect(host, port, `swtpm ${host}:${port}`, timeoutMs);
    return new SwtpmTransport(data);
  }

  get usable(): boolean {
    return this.data.usable;
  }

  transmit(command: Buffer, timeoutMs: number): Promise<Buffer> {
    return this.data.exchange(command, tpmResponseLength, timeoutMs);
  }

  close(): Promise<void> {
    return this.data.close();
  }
}

async function initialise(host: string, ctrlPort: number, timeoutMs: number): Promise<void> {
  const label = `swtpm control ${host}:${ctrlPort}`;
  const control = await SocketChannel.connect(host, ctrlPort, label, timeoutMs);
  try {
    const request = Buffer.alloc(8);
    request.writeUInt32BE(CMD_INIT, 0); // followed by u32 init flags = 0
    const reply = await control.exchange(request, (b) => (b.length >= 4 ? 4 : undefined), timeoutMs);
    const result = reply.readUInt32BE(0);
    if (result !== 0)
      throw new TpmError("TPM_TRANSPORT", `${label}: TPM initialisation failed (result ${result})`);
  } finally {
    await control.close();
  }
}
