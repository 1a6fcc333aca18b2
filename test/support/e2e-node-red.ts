// A real Node-RED process for the editor end-to-end tests: a fresh user folder, our package loaded from the
// repository root through `nodesDir` (as scripts/demo.mjs does), loopback only, no outside requests.
// Node-RED runs in its own process group so that stopping it also stops anything it spawned.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireFromNodeRed } from "./node-red-install.js";

const READY_LINE = "Started flows";
const STOP_GRACE_MS = 10_000;

export interface NodeRedOptions {
  /** Folder that holds our package.json (its `node-red` section) and nodes/. */
  packageDir: string;
  /** Extra environment for the runtime (the `${VAR}` fields of the example flows). */
  env?: Record<string, string>;
  /** Bound for "Started flows" plus an HTTP 200 on the editor. */
  startTimeoutMs?: number;
  /** More settings, as JavaScript properties of the settings object (e.g. an `adminAuth: {...},` entry). */
  extraSettings?: string;
}

export interface NodeRedProcess {
  /** http://127.0.0.1:PORT (no trailing slash). */
  readonly url: string;
  readonly userDir: string;
  /** Everything the runtime printed so far (stdout and stderr), for failure messages. */
  log(): string;
  /** Stops the process group (SIGTERM, then SIGKILL) and removes the user folder. Safe to call twice. */
  stop(): Promise<void>;
}

export class NodeRedStartError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(`${message}\n--- Node-RED output ---\n${output.slice(-4000)}`);
    this.name = "NodeRedStartError";
  }
}

/** A free TCP port on loopback: Node-RED logs its configured port, so it must be known before it starts. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function settingsFile(packageDir: string, port: number, extraSettings = ""): string {
  return `// Written by the editor end-to-end test.
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: ${port},
  flowFile: "flows.json",
  credentialSecret: false,
  nodesDir: [${JSON.stringify(packageDir)}],
  logging: { console: { level: "info", metrics: false, audit: false } },
  editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } },
  telemetry: { enabled: false },
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  ${extraSettings}
};
`;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is already gone
  }
}

async function waitUntilServing(url: string, child: ChildProcess, output: () => string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new NodeRedStartError(
        `Node-RED exited during start (${child.exitCode ?? child.signalCode})`,
        output(),
      );
    }
    if (output().includes(READY_LINE)) {
      const answer = await fetch(`${url}/`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
      if (answer?.ok) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new NodeRedStartError(`Node-RED did not serve the editor within ${timeoutMs} ms`, output());
}

export async function startNodeRed(options: NodeRedOptions): Promise<NodeRedProcess> {
  const userDir = await mkdtemp(join(tmpdir(), "provisio-e2e-node-red-"));
  const port = await freeLoopbackPort();
  await writeFile(
    join(userDir, "settings.js"),
    settingsFile(options.packageDir, port, options.extraSettings),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // The test runner's own variables would make a node:test child report into this test's stream.
  delete env.NODE_TEST_CONTEXT;

  const child = spawn(
    process.execPath,
    [
      requireFromNodeRed.resolve("node-red/red.js"),
      "--userDir",
      userDir,
      "--settings",
      join(userDir, "settings.js"),
    ],
    { env, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  let output = "";
  const collect = (chunk: Buffer) => (output += chunk.toString("utf8"));
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  child.on("error", (error) => (output += `\n[spawn error] ${error.message}\n`));
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  // If the test process dies without after(), the runtime must not outlive it.
  const killOnExit = () => signalGroup(child, "SIGKILL");
  process.once("exit", killOnExit);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    signalGroup(child, "SIGTERM");
    const killer = setTimeout(() => signalGroup(child, "SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(killer);
    process.off("exit", killOnExit);
    await rm(userDir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntilServing(url, child, () => output, options.startTimeoutMs ?? 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, userDir, log: () => output, stop };
}

/** Removes a folder, ignoring errors (cleanup paths must not hide the real failure). */
export async function removeQuietly(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
