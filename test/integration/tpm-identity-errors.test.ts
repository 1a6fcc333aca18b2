// What the tpm identity node says when the TPM cannot be used, checked on real failures: a TPM device the
// Node-RED user may not open (a file whose mode refuses the process, root without its file-access capabilities
// included), and a path with no TPM.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { describeTpmFailure, readIdentityAndInfo } from "../../src/nodes/shared/tpm-identity.js";

const HELPER = resolve(__dirname, "../../src/nodes/shared/tpm-identity.ts");

/**
 * Root opens any file; without the capabilities that allow it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), it is
 * held to the file's mode like any user. Dropped with util-linux's setpriv rather than by running as another
 * user, who may not be able to read this checkout (a clone under /root, a mode-0700 mutation-testing sandbox).
 */
const DROP_FILE_ACCESS_CAPS = ["-dac_override", "-dac_read_search"].join(",");
const SETPRIV = "/usr/bin/setpriv";

/** Reads a TPM device as a process that may not open it and returns the node's error text. */
function readAsUnprivileged(devicePath: string): Promise<string> {
  const script = `
    const { readIdentityAndInfo, describeTpmFailure } = require(${JSON.stringify(HELPER)});
    const spec = { kind: "device", path: ${JSON.stringify(devicePath)} };
    readIdentityAndInfo(spec, 2000).then(
      () => process.stdout.write("read"),
      (error) => process.stdout.write(describeTpmFailure(error, spec, 2000)),
    );`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // the child is no test of this runner
  const node = [process.execPath, "--import", "tsx", "--eval", script];
  const asRoot = process.getuid?.() === 0;
  const [command, ...args] = asRoot
    ? [SETPRIV, `--bounding-set=${DROP_FILE_ACCESS_CAPS}`, `--inh-caps=${DROP_FILE_ACCESS_CAPS}`, ...node]
    : node;
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env });
  let out = "";
  let err = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no answer from the unprivileged reader; stderr: ${err}`));
    }, 30_000);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolvePromise(`(could not start ${command}: ${error.message})`);
    });
    child.once("exit", () => {
      clearTimeout(timer);
      resolvePromise(out || `(no output) ${err}`);
    });
  });
}

describe("tpm identity: TPM access errors in plain words", () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-tpm-access-"));
    await chmod(dir, 0o755);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a TPM device the user may not open: says so and names the tss group", async () => {
    const device = join(dir, "tpmrm0");
    await writeFile(device, "");
    await chmod(device, 0o000); // no one may open it: like /dev/tpmrm0 for a user outside the tss group
    const text = await readAsUnprivileged(device);
    assert.match(text, /^no permission to use the TPM/);
    assert.match(text, /permission denied/);
    assert.match(text, /"tss" group/);
  });

  it("a path with no TPM: says no TPM was found there", async () => {
    const spec = { kind: "device" as const, path: join(dir, "no-tpm") };
    const error = await readIdentityAndInfo(spec, 2000).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error);
    assert.match(describeTpmFailure(error, spec, 2000), /^no TPM found \(.*no such device\)/);
  });
});
