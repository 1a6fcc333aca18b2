// The command engine against a real swtpm, through a front end that can answer chosen commands itself:
// TPM2_Startup on connect and its failures, the idle release of a one-client TPM, and a kernel device
// (a FIFO stands in for the character device: it hands back what was written, so every "response" is the
// command itself, and the first command on the wire is known by the code it reports).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { CommandEngine } from "../../src/tpm/command-engine.js";
import { TpmCommands } from "../../src/tpm/commands.js";
import { TPM_CAP_TPM_PROPERTIES, TPM_CC, TPM_PT_INPUT_BUFFER } from "../../src/tpm/constants.js";
import { TpmError } from "../../src/tpm/errors.js";
import { TpmWriter } from "../../src/tpm/marshal.js";
import { commandCodeOf, startTpmFaultFront, type TpmFaultFront } from "../support/tpm-fault-front.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const getRandom = (engine: CommandEngine): Promise<Buffer> =>
  engine.exclusive(async () => {
    const { parameters } = await engine.execute("GetRandom", {
      parameters: new TpmWriter().u16(8).toBuffer(),
    });
    return parameters.sized();
  });

/** A GetCapability response listing TPM properties: moreData 0, TPM_CAP_TPM_PROPERTIES, (tag, value) pairs. */
function capabilityResponse(properties: [number, number][]): Buffer {
  const parameters = new TpmWriter().u8(0).u32(TPM_CAP_TPM_PROPERTIES).u32(properties.length);
  for (const [tag, value] of properties) parameters.u32(tag).u32(value);
  const body = parameters.toBuffer();
  return new TpmWriter()
    .u16(0x8001)
    .u32(10 + body.length)
    .u32(0)
    .bytes(body)
    .toBuffer();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, limitMs = 5000): Promise<void> {
  for (const deadline = Date.now() + limitMs; !condition(); await sleep(20)) {
    if (Date.now() > deadline) assert.fail(`not within ${limitMs} ms: ${what}`);
  }
}

describe("TPM command engine (swtpm behind a front end)", () => {
  let tpm: TestTpm;
  let front: TpmFaultFront;

  before(async () => {
    tpm = await startTestTpm();
    front = await startTpmFaultFront(tpm.connection);
  });
  after(async () => {
    await front?.close();
    await tpm?.dispose();
  });
  beforeEach(() => {
    front.rule = undefined;
    front.commands.length = 0;
  });

  it("starts the TPM on connect and accepts an already started TPM (TPM_RC_INITIALIZE) or a fresh start", async () => {
    for (const startupAnswer of [undefined, 0x000]) {
      front.rule = (command) => (commandCodeOf(command) === TPM_CC.Startup ? startupAnswer : undefined);
      front.commands.length = 0;
      const engine = new CommandEngine(front.connection);
      try {
        assert.equal((await getRandom(engine)).length, 8);
        assert.deepEqual(front.commands, [TPM_CC.Startup, TPM_CC.GetRandom]);
      } finally {
        await engine.close();
      }
    }
  });

  it("fails with the Startup response code, closes that connection, and connects anew next time", async () => {
    front.rule = (command) => (commandCodeOf(command) === TPM_CC.Startup ? 0x101 : undefined);
    const engine = new CommandEngine(front.connection);
    try {
      const opened = front.dataConnectionsOpened();
      await assert.rejects(getRandom(engine), (error: unknown) => {
        assert.ok(error instanceof TpmError);
        assert.equal(error.code, "TPM_RESPONSE");
        assert.equal(error.command, "Startup");
        assert.equal(error.responseCode, 0x101);
        assert.equal(
          error.message,
          `swtpm 127.0.0.1:${front.connection.port}: TPM2_Startup failed: TPM_RC_FAILURE, 0x101`,
        );
        return true;
      });
      assert.deepEqual(front.commands, [TPM_CC.Startup], "nothing sent after the failed Startup");
      await until(() => front.dataConnectionsOpen() === 0, "the failed connection closed");
      front.rule = undefined;
      assert.equal((await getRandom(engine)).length, 8);
      assert.equal(front.dataConnectionsOpened(), opened + 2);
    } finally {
      await engine.close();
    }
  });

  it("refuses a Startup response shorter than a response header", async () => {
    // the size field says 6: the transport takes 6 bytes as the whole response
    front.rule = (command) =>
      commandCodeOf(command) === TPM_CC.Startup ? Buffer.from("8001000000060000000000", "hex") : undefined;
    const engine = new CommandEngine(front.connection);
    try {
      await assert.rejects(
        getRandom(engine),
        (error: unknown) =>
          error instanceof TpmError &&
          error.code === "TPM_PROTOCOL" &&
          error.message === "Startup response is truncated (wanted 10 bytes at 0)",
      );
    } finally {
      await engine.close();
    }
  });

  it("keeps a TCP TPM's connection for commands that follow closely, and releases it after 1 s idle", async () => {
    const engine = new CommandEngine(front.connection);
    try {
      const opened = front.dataConnectionsOpened();
      await getRandom(engine);
      await sleep(200);
      assert.equal(front.dataConnectionsOpen(), 1, "still connected 0.2 s after a command");
      await getRandom(engine);
      assert.equal(front.dataConnectionsOpened(), opened + 1, "the second command used the same connection");
      await until(() => front.dataConnectionsOpen() === 0, "released when idle");
      await getRandom(engine);
      assert.equal(front.dataConnectionsOpened(), opened + 2, "reconnected for the next command");
    } finally {
      await engine.close();
    }
  });

  it("reads one property out of a GetCapability answer, wherever the TPM lists it", async () => {
    // the TPM may list properties around the one asked for: only the one with its tag counts
    front.rule = (command) =>
      commandCodeOf(command) === TPM_CC.GetCapability
        ? capabilityResponse([
            [TPM_PT_INPUT_BUFFER - 1, 5],
            [TPM_PT_INPUT_BUFFER, 1536],
          ])
        : undefined;
    const engine = new CommandEngine(front.connection);
    try {
      const value = await engine.exclusive(() => new TpmCommands(engine).getProperty(TPM_PT_INPUT_BUFFER));
      assert.equal(value, 1536);
    } finally {
      await engine.close();
    }
  });

  it("says which property the TPM did not report", async () => {
    front.rule = (command) =>
      commandCodeOf(command) === TPM_CC.GetCapability
        ? capabilityResponse([[TPM_PT_INPUT_BUFFER + 1, 7]])
        : undefined;
    const engine = new CommandEngine(front.connection);
    try {
      await assert.rejects(
        engine.exclusive(() => new TpmCommands(engine).getProperty(TPM_PT_INPUT_BUFFER)),
        (error: unknown) =>
          error instanceof TpmError &&
          error.code === "TPM_PROTOCOL" &&
          error.message === "TPM did not report property 0x10d",
      );
    } finally {
      await engine.close();
    }
  });

  it("gets as many random bytes as asked for", async () => {
    const engine = new CommandEngine(front.connection);
    try {
      const tpm = new TpmCommands(engine);
      const [a, b] = await engine.exclusive(async () => [await tpm.getRandom(16), await tpm.getRandom(16)]);
      assert.equal(a?.length, 16);
      assert.notDeepEqual(a, b);
      assert.deepEqual(front.commands.slice(-2), [TPM_CC.GetRandom, TPM_CC.GetRandom]);
    } finally {
      await engine.close();
    }
  });

  it("never releases the connection on its own when told so (idleCloseMs 0)", async () => {
    const engine = new CommandEngine(front.connection, { idleCloseMs: 0 });
    try {
      await getRandom(engine);
      await sleep(300);
      assert.equal(front.dataConnectionsOpen(), 1);
    } finally {
      await engine.close();
    }
    await until(() => front.dataConnectionsOpen() === 0, "closed by close()");
  });
});

describe("TPM command engine on a kernel device", () => {
  let dir: string;
  let fifo: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-tpm-device-"));
    fifo = join(dir, "tpmrm0");
    execFileSync("mkfifo", [fifo]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** How many of this process's file descriptors are open on the device. */
  const openOnDevice = async (): Promise<number> => {
    let count = 0;
    for (const fd of await readdir("/proc/self/fd")) {
      const target = await readlink(join("/proc/self/fd", fd)).catch(() => "");
      if (target === fifo) count++;
    }
    return count;
  };

  it("sends no TPM2_Startup (the kernel started the TPM) and keeps the device open between commands", async () => {
    const engine = new CommandEngine({ kind: "device", path: fifo });
    try {
      // the echoed GetRandom reads as a response with code 0x17b: the first thing on the wire was GetRandom
      await assert.rejects(
        getRandom(engine),
        (error: unknown) =>
          error instanceof TpmError &&
          error.command === "GetRandom" &&
          error.responseCode === TPM_CC.GetRandom,
      );
      await sleep(1300);
      assert.equal(await openOnDevice(), 1, "the device stays open (the resource manager shares it)");
    } finally {
      await engine.close();
    }
    assert.equal(await openOnDevice(), 0);
  });
});
