// The azure-iot-local CLI as a user runs it: a child process that prints one JSON line when ready, keeps its
// CA, ID scope and keys in the data directory across restarts, applies an enrollments file, and exits
// cleanly on SIGTERM / SIGINT.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";

const CLI = resolve(__dirname, "../../src/emulator/cli.ts");
const READY_TIMEOUT_MS = 60_000;

interface ReadyLine {
  ca: string;
  idScope: string;
  dps: { amqp: string; https: string; mqtt: string };
  hub: { hostName: string; amqp: string };
  connectionStrings: { dpsService: string; hubService: string };
  web: string;
}

interface RunningCli {
  child: ChildProcess;
  ready: ReadyLine;
  stderr: () => string;
}

function startCli(args: string[]): Promise<RunningCli> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, READY_TIMEOUT_MS);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const newline = stdout.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        resolvePromise({
          child,
          ready: JSON.parse(stdout.slice(0, newline)) as ReadyLine,
          stderr: () => stderr,
        });
      } catch (error) {
        child.kill("SIGKILL");
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the CLI exited (${String(code)}) before it was ready; stderr: ${stderr}`));
    });
  });
}

async function stopCli(running: RunningCli, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (running.child.exitCode !== null) return running.child.exitCode;
  const exited = once(running.child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  running.child.kill(signal);
  const [code] = await exited;
  return code;
}

function parseConnectionString(cs: string): Record<string, string> {
  return Object.fromEntries(
    cs.split(";").map((part) => {
      const at = part.indexOf("=");
      return [part.slice(0, at), part.slice(at + 1)];
    }),
  );
}

/** A GET on the emulator's service API, authenticated with the given service connection string. */
async function serviceGet(
  ready: ReadyLine,
  connectionString: string,
  path: string,
): Promise<{ status: number; body: unknown }> {
  const cs = parseConnectionString(connectionString);
  const token = await buildSasToken(
    cs.HostName ?? "",
    Math.floor(Date.now() / 1000) + 300,
    (data) => hmacSha256(Buffer.from(cs.SharedAccessKey ?? "", "base64"), data),
    cs.SharedAccessKeyName,
  );
  const ca = await readFile(ready.ca, "utf8");
  const url = new URL(path, ready.web);
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { ca, headers: { Authorization: token } }, (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () =>
        resolvePromise({
          status: res.statusCode ?? 0,
          body: text ? (JSON.parse(text) as unknown) : undefined,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("azure-iot-local CLI", () => {
  let dir: string;
  const running: RunningCli[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-cli-"));
  });
  after(async () => {
    for (const cli of running) await stopCli(cli, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("prints one JSON line with CA, ID scope, endpoints, connection strings and web URL, and creates its files", async () => {
    const dataDir = join(dir, "first");
    const cli = await startCli(["--data-dir", dataDir]);
    running.push(cli);
    const { ready } = cli;
    assert.equal(ready.ca, join(dataDir, "ca.pem"));
    assert.match(ready.idScope, /^0ne[0-9A-F]{8}$/);
    for (const address of [ready.dps.amqp, ready.dps.https, ready.dps.mqtt, ready.hub.amqp]) {
      assert.match(address, /^localhost:\d+$/);
      assert.notEqual(address, "localhost:0");
    }
    assert.equal(ready.hub.hostName, ready.hub.amqp, "the hub's host name carries its port");
    assert.match(
      ready.connectionStrings.hubService,
      /^HostName=localhost:\d+;SharedAccessKeyName=iothubowner;SharedAccessKey=.+=$/,
    );
    assert.match(
      ready.connectionStrings.dpsService,
      /^HostName=localhost:\d+;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=.+$/,
    );
    assert.match(ready.web, /^https:\/\/localhost:\d+\/$/);
    assert.ok((await readFile(ready.ca, "utf8")).startsWith("-----BEGIN CERTIFICATE-----"));
    for (const keyFile of ["ca-key.pem", "server-key.pem", "emulator-identity.json"]) {
      assert.equal((await stat(join(dataDir, keyFile))).mode & 0o777, 0o600, keyFile);
    }
    // The printed connection strings are the ones the service API accepts (over TLS with the printed CA).
    const noDevice = await serviceGet(
      ready,
      ready.connectionStrings.hubService,
      "/devices/nobody?api-version=2021-04-12",
    );
    assert.equal(noDevice.status, 404);
    const noEnrollment = await serviceGet(
      ready,
      ready.connectionStrings.dpsService,
      "/enrollments/nobody?api-version=2021-10-01",
    );
    assert.equal(noEnrollment.status, 404);
    const wrongKey = await serviceGet(ready, ready.connectionStrings.dpsService, "/devices/nobody");
    assert.equal(wrongKey.status, 401, "the DPS key does not open hub routes");
    assert.equal(await stopCli(cli, "SIGTERM"), 0);
  });

  it("reuses CA, ID scope and keys after a restart, and exits 0 on SIGINT", async () => {
    const dataDir = join(dir, "restart");
    const first = await startCli(["--data-dir", dataDir]);
    running.push(first);
    const caBefore = await readFile(first.ready.ca, "utf8");
    assert.equal(await stopCli(first, "SIGINT"), 0);
    const second = await startCli(["--data-dir", dataDir]);
    running.push(second);
    assert.equal(await readFile(second.ready.ca, "utf8"), caBefore);
    assert.equal(second.ready.idScope, first.ready.idScope);
    const key = (cs: string) => parseConnectionString(cs).SharedAccessKey;
    assert.equal(
      key(second.ready.connectionStrings.hubService),
      key(first.ready.connectionStrings.hubService),
    );
    assert.equal(
      key(second.ready.connectionStrings.dpsService),
      key(first.ready.connectionStrings.dpsService),
    );
    assert.doesNotMatch(second.stderr(), /created a new CA/);
    assert.equal(await stopCli(second, "SIGINT"), 0);
  });

  it("applies an enrollments file at start, idempotently across restarts", async () => {
    const dataDir = join(dir, "enrollments");
    const file = join(dir, "enrollments.json");
    await writeFile(
      file,
      JSON.stringify({
        enrollments: [{ registrationId: "cli-device-1", attestation: { type: "symmetricKey" } }],
        enrollmentGroups: [{ enrollmentGroupId: "cli-group-1", attestation: { type: "symmetricKey" } }],
      }),
    );
    const first = await startCli(["--data-dir", dataDir, "--enrollments", file]);
    running.push(first);
    const read = async (ready: ReadyLine) =>
      (await serviceGet(ready, ready.connectionStrings.dpsService, "/enrollments/cli-device-1")).body as {
        etag: string;
        attestation: { symmetricKey: { primaryKey: string } };
      };
    const before = await read(first.ready);
    const group = await serviceGet(
      first.ready,
      first.ready.connectionStrings.dpsService,
      "/enrollmentGroups/cli-group-1",
    );
    assert.equal(group.status, 200);
    assert.equal(await stopCli(first), 0);
    const second = await startCli(["--data-dir", dataDir, "--enrollments", file]);
    running.push(second);
    const after = await read(second.ready);
    assert.equal(after.attestation.symmetricKey.primaryKey, before.attestation.symmetricKey.primaryKey);
    assert.equal(after.etag, before.etag, "re-applying an unchanged file changes nothing");
    assert.equal(await stopCli(second), 0);
  });

  it("refuses to start without --data-dir or with a bad port, with exit code 2", async () => {
    for (const args of [
      [],
      ["--data-dir", join(dir, "x"), "--hub-port", "70000"],
      ["--data-dir", join(dir, "x"), "--bogus"],
    ]) {
      const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const [code] = (await once(child, "exit")) as [number | null];
      assert.equal(code, 2, `args ${args.join(" ")}`);
      assert.match(stderr, /usage: azure-iot-local/);
    }
  });
});
