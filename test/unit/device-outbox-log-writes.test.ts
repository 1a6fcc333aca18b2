// How the outbox log writes: a kept record is on disk when append() returns; a done record rides with the next
// kept one or is written at the end of the event-loop turn (one write(2) per message instead of two); fsync runs
// in the background and a close while it runs loses nothing. Bodies are stored so that a replay sends the very
// bytes the first send would have.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Message } from "azure-iot-device";
import { OutboxLog } from "../../src/device/outbox-log.js";
import { messageBytes } from "../../src/device/outbox-record.js";
import { toHubMessage } from "../../src/device/message-mapping.js";

function message(id: string, body: string | Buffer = `{"id":"${id}"}`): Message {
  const m = new Message(body);
  m.messageId = id;
  return m;
}

function withDir(run: (file: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "provisio-outbox-writes-"));
    try {
      await run(join(dir, "outbox.log"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** What a process opening the files now (as after a kill, without close()) finds waiting. */
function waitingAfterKill(file: string): string[] {
  const other = new OutboxLog(file);
  const ids: string[] = [];
  for (let next = other.readNext(); next; next = other.readNext()) ids.push(next.message.messageId);
  other.close();
  return ids;
}

describe("outbox log writes", () => {
  it(
    "a kept record is on disk when append() returns, before any timer or turn",
    withDir((file) => {
      const log = new OutboxLog(file, { syncEveryMs: 60_000 });
      log.append(message("a"), 5);
      log.append(message("b"), 5);
      assert.deepEqual(waitingAfterKill(file), ["a", "b"]);
      log.close();
    }),
  );

  it(
    "a done record is written with the next kept record",
    withDir((file) => {
      const log = new OutboxLog(file, { syncEveryMs: 60_000 });
      const a = log.append(message("a"), 5);
      log.append(message("b"), 5);
      log.done(a, 5);
      log.append(message("c"), 5);
      // Same turn, no close: "a" is already marked done on disk.
      assert.deepEqual(waitingAfterKill(file), ["b", "c"]);
      log.close();
    }),
  );

  it(
    "a done record with no kept record after it reaches the disk by the end of the event-loop turn",
    withDir(async (file) => {
      const log = new OutboxLog(file, { syncEveryMs: 60_000 });
      const a = log.append(message("a"), 5);
      const b = log.append(message("b"), 5);
      log.done(a, 5);
      log.done(b, 5);
      await nextTurn();
      assert.deepEqual(waitingAfterKill(file), []);
      log.close();
    }),
  );

  it(
    "close() writes done records still waiting for the end of the turn",
    withDir((file) => {
      const log = new OutboxLog(file);
      const a = log.append(message("a"), 5);
      log.append(message("b"), 5);
      log.done(a, 5);
      log.close();
      assert.deepEqual(waitingAfterKill(file), ["b"]);
    }),
  );

  it(
    "keeps writing and closes cleanly while a background fsync runs, across segment rotations",
    withDir(async (file) => {
      const log = new OutboxLog(file, { syncEveryMs: 1, segmentBytes: 2048 });
      const kept: number[] = [];
      for (let i = 0; i < 300; i++) {
        kept.push(log.append(message(`m${i}`, "x".repeat(40)), 40));
        if (i % 10 === 0) await sleep(2);
        if (i % 3 === 0) log.done(kept[i], 40);
      }
      log.close();
      const expected = Array.from({ length: 300 }, (_, i) => `m${i}`).filter((_, i) => i % 3 !== 0);
      assert.deepEqual(waitingAfterKill(file), expected);
      // The files of the closed log stay usable by the next one, even with an fsync that was still running.
      await sleep(20);
      assert.deepEqual(waitingAfterKill(file), expected);
    }),
  );

  it(
    "stores string, UTF-8 and binary bodies so that the replay sends the same bytes",
    withDir((file) => {
      const bodies: Array<string | Buffer> = [
        '{"t":"héllo ✓ 😀"}',
        "lone \ud800 surrogate",
        Buffer.from("valid utf-8 ✓"),
        Buffer.from([0xc3, 0x28, 0xff, 0x00]),
        Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate: not valid UTF-8, must not be "repaired"
      ];
      const log = new OutboxLog(file);
      bodies.forEach((body, i) => log.append(message(`b${i}`, body), messageBytes(message("x", body))));
      log.close();
      const reopened = new OutboxLog(file);
      bodies.forEach((body, i) => {
        const back = reopened.readNext();
        assert.equal(back?.message.messageId, `b${i}`);
        const sent = Buffer.isBuffer(body) ? body : Buffer.from(body);
        assert.deepEqual(back?.message.getData(), sent, `body ${i}`);
        assert.equal(back?.bytes, sent.length + 1, `bytes of body ${i}`);
      });
      reopened.close();
    }),
  );

  it("serialises an object payload once per message", () => {
    let serialised = 0;
    const payload = {
      toJSON() {
        serialised += 1;
        return { value: 1 };
      },
    };
    const built = toHubMessage(payload);
    assert.equal(serialised, 1);
    assert.equal(built.getData(), '{"value":1}');
  });
});
