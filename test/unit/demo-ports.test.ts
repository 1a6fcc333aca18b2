// The demo stops before starting anything when one of its ports is taken, and names the DEMO_* variable
// that moves it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

const demo = join(__dirname, "..", "..", "scripts", "demo.mjs");

function runDemo(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [demo], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    // The port check comes first; a demo that gets further than that is a failure, not a hang.
    const timer = setTimeout(() => {
      child.kill("SIGINT");
      reject(new Error(`the demo did not stop at its port check:\n${output}`));
    }, 15_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("the demo's ports", () => {
  let occupied: Server;
  let busyPort: number;

  before(async () => {
    occupied = createServer();
    await new Promise<void>((resolve) => occupied.listen(0, "127.0.0.1", resolve));
    busyPort = (occupied.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => occupied.close(() => resolve())));

  it("a busy port is reported with the variable that moves it, and nothing is started", async () => {
    const { code, output } = await runDemo({ DEMO_EDITOR_PORT: String(busyPort) });
    assert.equal(code, 1, output);
    assert.match(
      output,
      new RegExp(
        `port ${busyPort} \\(the Node-RED editor\\) is in use: choose another with DEMO_EDITOR_PORT`,
      ),
    );
    assert.doesNotMatch(output, /swtpm on|emulator:|Node-RED editor:/, "nothing was started");
  });

  it("a malformed port variable is named", async () => {
    const { code, output } = await runDemo({ DEMO_HUB_PORT: "fifty" });
    assert.equal(code, 2, output);
    assert.match(output, /DEMO_HUB_PORT=fifty is not a port number/);
  });
});
