// A real HTTP proxy on loopback for the proxy tests: Debian's tinyproxy (installed by .ci/run next to swtpm),
// started in the foreground with a configuration of its own, optionally with Basic authentication. It can be
// killed and started again on the same port, as a proxy that goes away mid-stream.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestProxy {
  readonly host: string;
  readonly port: number;
  /** http://host:port, without credentials. */
  readonly url: string;
  /** Kills the proxy at once (SIGKILL): its tunnels break mid-stream. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  /** What tinyproxy logged so far (one line per CONNECT, with its target). */
  log(): Promise<string>;
  dispose(): Promise<void>;
}

export class TinyproxyNotInstalledError extends Error {
  override name = "TinyproxyNotInstalledError";
  constructor() {
    super("tinyproxy is not installed (apt-get install tinyproxy)");
  }
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function listening(host: string, port: number, deadline: number): Promise<void> {
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`tinyproxy did not listen on ${host}:${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts tinyproxy on `host` (a loopback address) and a free port; with `auth`, it wants Basic credentials. */
export async function startTinyproxy(
  options: { host?: string; auth?: { username: string; password: string } } = {},
): Promise<TestProxy> {
  const host = options.host ?? "127.0.0.1";
  const port = await freePort(host);
  const dir = await mkdtemp(join(tmpdir(), "provisio-tinyproxy-"));
  const config = join(dir, "tinyproxy.conf");
  await writeFile(
    config,
    [
      `Port ${port}`,
      `Listen ${host}`,
      "Timeout 600",
      "MaxClients 100",
      "Allow 127.0.0.0/8",
      `LogFile "${join(dir, "tinyproxy.log")}"`,
      "LogLevel Info",
      `PidFile "${join(dir, "tinyproxy.pid")}"`,
      ...(options.auth ? [`BasicAuth ${options.auth.username} ${options.auth.password}`] : []),
      "",
    ].join("\n"),
  );
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const started = spawn("tinyproxy", ["-d", "-c", config], { stdio: "ignore" });
    const failed = new Promise<never>((_, reject) =>
      started.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "ENOENT" ? new TinyproxyNotInstalledError() : error),
      ),
    );
    child = started;
    await Promise.race([listening(host, port, Date.now() + 10_000), failed]);
  };
  const kill = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    host,
    port,
    url: `http://${host}:${port}`,
    kill,
    restart: start,
    log: () => readFile(join(dir, "tinyproxy.log"), "utf8").catch(() => ""),
    dispose: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
