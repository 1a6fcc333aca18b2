import { open, type FileHandle } from "node:fs/promises";
import { TpmError } from "../errors.js";
import type { TpmTransport } from "./transport.js";

// The kernel TPM interface: one write of a command, one read of its response (max 4096 bytes).
const MAX_RESPONSE = 4096;

export class DeviceTransport implements TpmTransport {
  readonly needsStartup = false; // the kernel has started the TPM at boot
  private failed = false;

  private constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
  ) {}

  static async open(paths: readonly string[]): Promise<DeviceTransport> {
    const problems: string[] = [];
    for (const path of paths) {
      try {
        return new DeviceTransport(await open(path, "r+"), path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? "error";
        problems.push(
          code === "EACCES"
            ? `${path}: permission denied (add the Node-RED user to the "tss" group)`
            : code === "ENOENT"
              ? `${path}: no such device`
              : `${path}: ${code}`,
        );
      }
    }
    throw new TpmError("TPM_TRANSPORT", `cannot open a TPM device: ${problems.join("; ")}`);
  }

  get usable(): boolean {
    return !this.failed;
  }

  async transmit(command: Buffer, timeoutMs: number): Promise<Buffer> {
    if (this.failed) throw new TpmError("TPM_CLOSED", `${this.path}: device closed`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TpmError("TPM_TIMEOUT", `${this.path}: no response within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    const exchange = (async () => {
      await this.handle.write(command);
      const response = Buffer.alloc(MAX_RESPONSE);
      const { bytesRead } = await this.handle.read(response, 0, MAX_RESPONSE, null);
      return response.subarray(0, bytesRead);
    })();
    try {
      return await Promise.race([exchange, timeout]);
    } catch (error) {
      this.failed = true;
      exchange.catch(() => undefined); // a read that ends after the timeout has nobody left to tell
      // Not awaited: a file handle closes only once no read is in flight, and the read of a TPM that never
      // answers never returns; waiting for it would hold the time-out back just as long.
      void this.handle.close().catch(() => undefined);
      if (error instanceof TpmError) throw error;
      throw new TpmError("TPM_TRANSPORT", `${this.path}: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.failed) return;
    this.failed = true;
    await this.handle.close().catch(() => undefined);
  }
}
