import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startSwtpm, SwtpmNotInstalledError } from "../../src/swtpm/launcher.js";

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });

describe("swtpm launcher", () => {
  it("starts swtpm on free loopback ports and stops exactly that process", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "provisio-launcher-"));
    try {
      const first = await startSwtpm({ stateDir });
      const second = await startSwtpm({ stateDir: `${stateDir}/second` });
      assert.notEqual(first.connection.port, second.connection.port);
      assert.equal(first.connection.host, "127.0.0.1");
      assert.ok(await accepts(first.connection.ctrlPort));
      await first.stop();
      assert.equal(alive(first.pid), false, "the stopped swtpm is gone");
      assert.equal(alive(second.pid), true, "the other swtpm still runs");
      await second.stop();
      assert.equal(alive(second.pid), false);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("says clearly when swtpm is not installed", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "provisio-launcher-"));
    try {
      await assert.rejects(
        startSwtpm({ stateDir, executable: "/nonexistent/swtpm" }),
        (error: unknown) =>
          error instanceof SwtpmNotInstalledError && /apt-get install swtpm/.test(error.message),
      );
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("reports a port that is taken instead of hanging", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "provisio-launcher-"));
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(startSwtpm({ stateDir, port: taken, startTimeoutMs: 5000 }), /swtpm/);
    } finally {
      blocker.close();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
