import net from "node:net";
import { TpmError } from "../errors.js";

/** Returns the length of the first complete message in `buffer`, or undefined while it is incomplete. */
export type Framer = (buffer: Buffer) => number | undefined;

interface Pending {
  framer: Framer;
  resolve: (message: Buffer) => void;
  reject: (error: TpmError) => void;
  timer: NodeJS.Timeout;
}

/**
 * A TCP connection carrying request/response exchanges, one at a time. Socket errors, an early close and
 * timeouts reject the exchange in flight with a TpmError and leave the channel unusable; nothing is ever
 * thrown from a socket event.
 */
export class SocketChannel {
  private received = Buffer.alloc(0);
  private pending: Pending | undefined;
  private failure: TpmError | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly label: string,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error: Error) =>
      this.fail(new TpmError("TPM_TRANSPORT", `${label}: ${error.message}`, { cause: error })),
    );
    socket.on("close", () =>
      this.fail(new TpmError("TPM_TRANSPORT", `${label}: connection closed by the TPM`)),
    );
  }

  static connect(host: string, port: number, label: string, timeoutMs: number): Promise<SocketChannel> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TpmError("TPM_TIMEOUT", `${label}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new TpmError("TPM_TRANSPORT", `${label}: cannot connect: ${error.message}`, { cause: error }));
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.off("error", onError);
        resolve(new SocketChannel(socket, label));
      });
    });
  }

  get usable(): boolean {
    return this.failure === undefined;
  }

  /** Writes `request` in one write (swtpm reads one command per read) and waits for one framed reply. */
  exchange(request: Buffer, framer: Framer, timeoutMs: number): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) {
      return Promise.reject(new TpmError("TPM_PROTOCOL", `${this.label}: an exchange is already in flight`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new TpmError("TPM_TIMEOUT", `${this.label}: no response within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.pending = { framer, resolve, reject, timer };
      this.received = Buffer.alloc(0);
      this.socket.write(request);
    });
  }

  /** Sends bytes that get no reply (e.g. the simulator's session-end signal). */
  send(bytes: Buffer): void {
    if (!this.failure) this.socket.write(bytes);
  }

  close(): Promise<void> {
    this.fail(new TpmError("TPM_CLOSED", `${this.label}: connection closed`));
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once("close", () => resolve());
      this.socket.end();
      // a peer that never answers our FIN must not hold close() up
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private onData(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk]);
    const pending = this.pending;
    if (!pending) return;
    const length = pending.framer(this.received);
    if (length === undefined) return;
    const message = Buffer.from(this.received.subarray(0, length));
    this.received = this.received.subarray(length);
    this.pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve(message);
  }

  private fail(error: TpmError): void {
    if (!this.failure) this.failure = error;
    const pending = this.pending;
    this.pending = undefined;
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    if (!this.socket.destroyed && error.code !== "TPM_CLOSED") this.socket.destroy();
  }
}
