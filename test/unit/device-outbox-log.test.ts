// The outbox on disk: what was kept and not done comes back after a reopen, in order, byte for byte, paged in
// one at a time; a torn last line or a damaged record is skipped and counted, and its number never given out
// again; segments whose messages are all done are deleted, so the disk does not fill with delivered messages;
// a process killed with SIGKILL loses nothing it had kept (no fsync needed for a kill, only for a power cut).
import { spawn } from "node:child_process";
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Message } from "azure-iot-device";
import { OutboxLog } from "../../src/device/outbox-log.js";
import { messageBytes } from "../../src/device/outbox-record.js";
import { ids, readAll, withDir } from "../support/outbox-log-fixtures.js";

function message(id: string, body: string | Buffer = `{"id":"${id}"}`): Message {
  const m = new Message(body);
  m.messageId = id;
  m.contentType = "application/json";
  m.contentEncoding = "utf-8";
  m.correlationId = `c-${id}`;
  m.properties.add("site", "plant-a");
  return m;
}

function diskBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

describe("outbox log on disk", () => {
  it(
    "gives back what was kept and not done, in order, with body, ids, properties and their bytes",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file);
      const binary = Buffer.from([0, 1, 2, 255]);
      const messages = ["a", "b", "c", "d"].map((id) => message(id, id === "c" ? binary : undefined));
      const seqs = messages.map((m) => log.append(m, messageBytes(m)));
      log.done(seqs[1], messageBytes(messages[1]));
      assert.equal(log.size, 3);
      log.close();
      const reopened = new OutboxLog(file);
      assert.equal(reopened.size, 3);
      assert.equal(
        reopened.bytes,
        messageBytes(messages[0]) + messageBytes(messages[2]) + messageBytes(messages[3]),
      );
      const back = readAll(reopened);
      assert.deepEqual(
        back.map((r) => r.message.messageId),
        ["a", "c", "d"],
      );
      assert.deepEqual(back[1].message.getData(), binary);
      assert.equal(back[0].message.correlationId, "c-a");
      assert.equal(back[0].message.contentType, "application/json");
      assert.equal(back[0].message.contentEncoding, "utf-8");
      assert.equal(back[0].message.properties.getValue("site"), "plant-a");
      assert.equal(back[0].bytes, messageBytes(messages[0]));
      // New records continue after the recovered ones, and done works on recovered ones.
      const e = reopened.append(message("e"), 7);
      assert.ok(e > back[2].seq);
      reopened.done(back[0].seq, back[0].bytes);
      reopened.close();
      assert.deepEqual(ids(new OutboxLog(file)), ["c", "d", "e"]);
    }),
  );

  it(
    "skips a torn last line, counts it, and keeps writing on a line of its own",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file);
      log.append(message("whole"), 10);
      log.close();
      const [segment] = readdirSync(dir);
      appendFileSync(join(dir, segment), 'k 2 10 1234abcd {"t":"{\\"id');
      const reopened = new OutboxLog(file);
      assert.equal(reopened.corruptRecords, 1);
      assert.equal(reopened.size, 1);
      reopened.append(message("after"), 10);
      reopened.close();
      const last = new OutboxLog(file);
      assert.equal(last.corruptRecords, 1, "the torn line is still there, counted once per open");
      assert.deepEqual(ids(last), ["whole", "after"]);
    }),
  );

  it(
    "skips a record whose CRC does not match, counts it, and never gives its number out again",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file);
      for (const id of ["one", "two", "three"]) log.append(message(id), 10);
      log.close();
      const [segment] = readdirSync(dir);
      const path = join(dir, segment);
      writeFileSync(path, readFileSync(path, "utf8").replace('\\"id\\":\\"two', '\\"id\\":\\"twX'));
      const reopened = new OutboxLog(file);
      assert.equal(reopened.corruptRecords, 1);
      assert.equal(reopened.size, 2);
      const back = readAll(reopened);
      assert.deepEqual(
        back.map((r) => r.message.messageId),
        ["one", "three"],
      );
      for (const r of back) reopened.done(r.seq, r.bytes);
      assert.equal(reopened.size, 0);
      assert.ok(reopened.append(message("four"), 10) > back[1].seq);
      reopened.close();
      assert.deepEqual(ids(new OutboxLog(file)), ["four"]);
    }),
  );

  it(
    "deletes segments once their messages are done, so disk usage stays bounded while messages stream through",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const segmentBytes = 8 * 1024;
      const log = new OutboxLog(file, { segmentBytes });
      let most = 0;
      for (let round = 0; round < 200; round++) {
        for (let i = 0; i < 50; i++) log.append(message(`r${round}-${i}`, "x".repeat(100)), 100);
        for (const r of readAll(log)) log.done(r.seq, r.bytes);
        most = Math.max(most, diskBytes(dir));
      }
      // 10,000 messages of ~200 B on disk went through; never more than the segment being written and the one
      // before it (plus what was written since the last done).
      assert.ok(most < 3 * segmentBytes, `${most} bytes on disk at most`);
      assert.ok(log.segmentCount <= 2, `${log.segmentCount} segments`);
      assert.equal(log.size, 0);
      log.close();
      const reopened = new OutboxLog(file, { segmentBytes });
      assert.equal(reopened.size, 0);
      assert.equal(reopened.readNext(), undefined);
      reopened.close();
    }),
  );

  it(
    "keeps undelivered messages across many segments and reopens without decoding them",
    withDir((dir) => {
      const file = join(dir, "outbox.log");
      const log = new OutboxLog(file, { segmentBytes: 4 * 1024 });
      for (let i = 0; i < 1000; i++) log.append(message(`m${i}`), 20);
      // The first 300 delivered: their segments go, the rest stay.
      for (const r of readAll(log).slice(0, 300)) log.done(r.seq, r.bytes);
      log.close();
      const reopened = new OutboxLog(file, { segmentBytes: 4 * 1024 });
      assert.equal(reopened.size, 700);
      assert.equal(reopened.bytes, 700 * 20);
      assert.ok(reopened.segmentCount > 10);
      assert.deepEqual(
        ids(reopened),
        Array.from({ length: 700 }, (_, i) => `m${i + 300}`),
      );
      reopened.close();
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
      const reopened = new OutboxLog(file);
      assert.equal(reopened.size, 1500);
      assert.deepEqual(
        ids(reopened),
        Array.from({ length: 1500 }, (_, i) => `kill-${i + 500}`),
      );
    }),
  );
});
