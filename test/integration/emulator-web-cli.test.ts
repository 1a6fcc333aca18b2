// The web page as the CLI user gets it: the ready line's "ui" field is a loopback URL with the access token,
// on the port given with --ui-port, next to the unchanged "web" (service API) field; the token works there.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CliUsageError, parseCliArguments } from "../../src/emulator/cli.js";

const CLI = resolve(__dirname, "../../src/emulator/cli.ts");
const WAIT_MS = 60_000;

function freePort(): Promise<number> {
  return new Promise((done, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => done(port));
    });
  });
}

function readyLine(child: ChildProcess): Promise<Record<string, unknown>> {
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((done, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line; stderr: ${stderr}`)), WAIT_MS);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const newline = stdout.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        done(JSON.parse(stdout.slice(0, newline)) as Record<string, unknown>);
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the CLI exited (${String(code)}) before it was ready; stderr: ${stderr}`));
    });
  });
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((done, reject) => {
    const req = request(url, { headers }, (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () => done({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    req.setTimeout(WAIT_MS, () => req.destroy(new Error(`timed out: GET ${url}`)));
    req.on("error", reject);
    req.end();
  });
}

describe("azure-iot-local --ui-port", () => {
  let dir: string;
  let child: ChildProcess | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-web-cli-"));
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("parses --ui-port and refuses a bad one", () => {
    assert.equal(parseCliArguments(["--data-dir", dir, "--ui-port", "8080"]).uiPort, 8080);
    assert.equal(parseCliArguments(["--data-dir", dir]).uiPort, 0);
    assert.throws(() => parseCliArguments(["--data-dir", dir, "--ui-port", "http"]), CliUsageError);
    assert.throws(() => parseCliArguments(["--data-dir", dir, "--ui-port", "70000"]), CliUsageError);
  });

  it("prints the page's URL with its token on the asked port, and the token opens the API", async () => {
    const port = await freePort();
    child = spawn(
      process.execPath,
      ["--import", "tsx", CLI, "--data-dir", join(dir, "data"), "--ui-port", String(port)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const ready = await readyLine(child);
    assert.match(String(ready.web), /^https:\/\/localhost:\d+\/$/, "the service API field is unchanged");
    const ui = String(ready.ui);
    assert.match(ui, new RegExp(`^http://127\\.0\\.0\\.1:${port}/\\?token=[A-Za-z0-9_-]{43}$`));
    const token = new URL(ui).searchParams.get("token") ?? "";
    const page = await get(ui);
    assert.equal(page.status, 200);
    assert.match(page.text, /id="devices"/);
    const api = `http://127.0.0.1:${port}/ui/api/devices`;
    assert.equal((await get(api)).status, 401);
    const devices = await get(api, { Authorization: `Bearer ${token}` });
    assert.equal(devices.status, 200);
    assert.deepEqual((JSON.parse(devices.text) as { devices: unknown[] }).devices, []);

    const exited = once(child, "exit") as Promise<[number | null]>;
    child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
    await assert.rejects(get(api, { Authorization: `Bearer ${token}` }), "the page's listener is closed");
  });
});
