// The outbox on disk: what was kept and not done comes back after a reopen, in order, byte for byte; a torn
// last line is ignored without gluing the next record to it; a process killed with SIGKILL loses nothing it
// had kept (no fsync needed for a kill, only for a power cut).
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Message } from "azure-iot-device";
import { OutboxLog } from "../../src/device/outbox-log.js";

function message(id: string, body: string | Buffer = `{"id":"${id}"}`): Message {
  const m = new Message(body);
  m.messageId = id;
  m.contentType = "application/json";
  m.contentEncoding = "utf-8";
  m.correlationId = `c-${id}`;
  m.properties.add("site", "plant-a");
  return m;
}

function withDir(run: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "provisio-outbox-log-"));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

describe("outbox log on disk", () => {
  it(
    "gives back what was kept and not done, in order, with body, ids and properties",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file);
      const binary = Buffer.from([0, 1, 2, 255]);
      const seqs = ["a", "b", "c", "d"].map((id) => log.keep(message(id, id === "c" ? binary : undefined)));
      log.done(seqs[1]);
      log.close();
      const reopened = new OutboxLog(file);
      const back = reopened.recovered();
      assert.deepEqual(
        back.map((r) => r.message.messageId),
        ["a", "c", "d"],
      );
      assert.deepEqual(back[1].message.getData(), binary);
      assert.equal(back[0].message.correlationId, "c-a");
      assert.equal(back[0].message.contentType, "application/json");
      assert.equal(back[0].message.properties.getValue("site"), "plant-a");
      // New records continue after the recovered ones, and done works on recovered ones.
      const e = reopened.keep(message("e"));
      assert.ok(e > back[2].seq);
      reopened.done(back[0].seq);
      reopened.close();
      assert.deepEqual(
        new OutboxLog(file).recovered().map((r) => r.message.messageId),
        ["c", "d", "e"],
      );
    }),
  );

  it(
    "ignores a torn last line and keeps the next record on a line of its own",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file);
      log.keep(message("whole"));
      log.close();
      appendFileSync(file, '{"k":2,"m":{"body":"eyJ');
      const reopened = new OutboxLog(file);
      reopened.keep(message("after"));
      reopened.close();
      assert.deepEqual(
        new OutboxLog(file).recovered().map((r) => r.message.messageId),
        ["whole", "after"],
      );
    }),
  );

  it(
    "is rewritten with only the pending records when it reopens with done ones",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file);
      const seqs = Array.from({ length: 500 }, (_, i) => log.keep(message(`m${i}`)));
      for (const seq of seqs.slice(0, 499)) log.done(seq);
      log.close();
      const before = statSync(file).size;
      new OutboxLog(file).close();
      assert.ok(statSync(file).size < before / 100, `${statSync(file).size} of ${before} bytes`);
      assert.match(readFileSync(file, "utf8"), /m499/);
    }),
  );

  it(
    "a process killed with SIGKILL loses nothing it had kept",
    withDir(async (dir) => {
      const file = join(dir, "outbox.log");
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "test/support/outbox-log-child.ts", file, "2000", "500"],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => {
          if (chunk.toString().includes("kept")) resolve();
        });
        child.on("exit", (code) => reject(new Error(`child ended early: ${code}`)));
      });
      const exited = new Promise((resolve) => child.on("exit", resolve));
      child.kill("SIGKILL");
      await exited;
      const back = new OutboxLog(file).recovered().map((r) => r.message.messageId);
      assert.equal(back.length, 1500);
      assert.deepEqual(
        back,
        Array.from({ length: 1500 }, (_, i) => `kill-${i + 500}`),
      );
    }),
  );
});
