import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import net from "node:net";

export interface SwtpmOptions {
  /** Folder for the TPM's state (NV memory, persistent keys). Reusing it keeps the TPM's identity. */
  stateDir: string;
  /** Loopback by default. */
  host?: string;
  /** Data and control ports; 0 or absent picks free ports. */
  port?: number;
  ctrlPort?: number;
  /** The swtpm executable. Default: `swtpm` on the PATH. */
  executable?: string;
  /** How long to wait for swtpm to answer. Default 10 s. */
  startTimeoutMs?: number;
}

export interface SwtpmInstance {
  /** The connection object our TPM client takes. */
  readonly connection: { kind: "swtpm"; host: string; port: number; ctrlPort: number };
  readonly pid: number;
  readonly stateDir: string;
  /** Resolves when the process has ended, whoever ended it. */
  readonly exited: Promise<void>;
  /** Stops exactly the process this launcher started (SIGTERM, then SIGKILL after 3 s). */
  stop(): Promise<void>;
}

export class SwtpmNotInstalledError extends Error {
  override readonly name = "SwtpmNotInstalledError";
  constructor(executable: string) {
    super(
      `swtpm is not installed (cannot run "${executable}"). On Debian or Ubuntu: sudo apt-get install swtpm`,
    );
  }
}

// swtpm control channel: CMD_GET_CAPABILITY (swtpm include/swtpm/tpm_ioctl.h) answers [u32 result][u32 caps].
const CMD_GET_CAPABILITY = 0x00000001;

/** Starts swtpm (TPM 2.0) on loopback TCP ports and waits until its control channel answers. */
export async function startSwtpm(options: SwtpmOptions): Promise<SwtpmInstance> {
  const host = options.host ?? "127.0.0.1";
  const executable = options.executable ?? "swtpm";
  const timeoutMs = options.startTimeoutMs ?? 10_000;
  await mkdir(options.stateDir, { recursive: true });
  const port = options.port || (await freePort(host));
  const ctrlPort = options.ctrlPort || (await freePort(host, port));

  const child = spawn(
    executable,
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${options.stateDir}`,
      "--server",
      `type=tcp,port=${port},bindaddr=${host}`,
      "--ctrl",
      `type=tcp,port=${ctrlPort},bindaddr=${host}`,
      "--flags",
      "not-need-init,startup-clear",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const spawnError = new Promise<never>((_, reject) => {
    child.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "ENOENT" ? new SwtpmNotInstalledError(executable) : error),
    );
  });
  const earlyExit = exited.then(() => {
    throw new Error(`swtpm exited during start-up: ${stderr.trim() || "no message"}`);
  });

  const waiting = { cancelled: false };
  try {
    await Promise.race([waitUntilAnswering(host, ctrlPort, timeoutMs, waiting), spawnError, earlyExit]);
  } catch (error) {
    waiting.cancelled = true;
    await stopProcess(child, exited);
    throw error;
  }
  earlyExit.catch(() => undefined);
  spawnError.catch(() => undefined);

  return {
    connection: { kind: "swtpm", host, port, ctrlPort },
    pid: child.pid ?? 0,
    stateDir: options.stateDir,
    exited,
    stop: () => stopProcess(child, exited),
  };
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(killer);
}

function freePort(host: string, avoid?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port === avoid ? resolve(freePort(host, avoid)) : resolve(port)));
    });
  });
}

async function waitUntilAnswering(
  host: string,
  ctrlPort: number,
  timeoutMs: number,
  waiting: { cancelled: boolean },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!waiting.cancelled) {
    if (await controlAnswers(host, ctrlPort)) return;
    if (Date.now() > deadline)
      throw new Error(`swtpm did not answer on ${host}:${ctrlPort} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function controlAnswers(host: string, ctrlPort: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: ctrlPort });
    let received = Buffer.alloc(0);
    const done = (answered: boolean): void => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => {
      const request = Buffer.alloc(4);
      request.writeUInt32BE(CMD_GET_CAPABILITY);
      socket.write(request);
    });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 8) done(received.readUInt32BE(0) === 0);
    });
  });
}
