// The outbox bounds, in memory and on disk: by messages and by bytes, each policy (drop the oldest waiting or
// refuse the new one), every loss counted and reported; and a disk outbox far larger than the in-memory window
// that survives a restart and then delivers every message in order while memory holds only the window.
// The hub link is a fake that accepts everything (pure logic: the pump only calls sendEvent).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Message } from "azure-iot-device";
import { OutboxOverflowError } from "../../src/device/errors.js";
import type { HubLink } from "../../src/device/hub-connection.js";
import { OutboxLog } from "../../src/device/outbox-log.js";
import { messageBytes } from "../../src/device/outbox-record.js";
import { DefaultRetryPolicy } from "../../src/device/retry-policy.js";
import {
  TelemetryPump,
  type TelemetryDrop,
  type TelemetryPumpOptions,
} from "../../src/device/telemetry-pump.js";

function message(id: string, body = "0123456789"): Message {
  const m = new Message(body);
  m.messageId = id;
  return m;
}

/** A link that accepts every message on the next turn and records the order. */
function acceptingLink(sent: string[], onSend?: () => void): HubLink {
  return {
    sendEvent: (m: Message) => {
      sent.push(m.messageId);
      onSend?.();
      return new Promise<void>((resolve) => setImmediate(resolve));
    },
  } as unknown as HubLink;
}

function pump(options: Partial<TelemetryPumpOptions>, drops: TelemetryDrop[] = []): TelemetryPump {
  return new TelemetryPump({
    maxMessages: 1_000,
    maxBytes: 1_000_000,
    overflow: "drop-oldest",
    window: 4,
    ackTimeoutMs: 5_000,
    policy: new DefaultRetryPolicy(),
    deviceId: () => "dev",
    linkFailed: () => undefined,
    paused: () => undefined,
    resumed: () => undefined,
    dropped: (drop) => drops.push(drop),
    ...options,
  });
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

function withDir(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "provisio-outbox-"));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const ONE = messageBytes(message("m0"));

describe("outbox bounds", () => {
  it("by messages, drop-oldest: the oldest waiting give way, each rejected, counted and reported", async () => {
    const drops: TelemetryDrop[] = [];
    const outbox = pump({ maxMessages: 3, overflow: "drop-oldest" }, drops);
    const sends = ["m0", "m1", "m2", "m3", "m4"].map((id) =>
      outbox.enqueue(message(id)).catch((error: unknown) => error),
    );
    assert.equal(outbox.size, 3);
    assert.equal(outbox.droppedCount, 2);
    assert.deepEqual(
      drops.map((d) => `${d.messageId}/${d.policy}/${d.droppedTotal}`),
      ["m0/drop-oldest/1", "m1/drop-oldest/2"],
    );
    const sent: string[] = [];
    outbox.attach(acceptingLink(sent));
    const outcomes = await Promise.all(sends);
    assert.ok(outcomes[0] instanceof OutboxOverflowError && outcomes[0].policy === "drop-oldest");
    assert.deepEqual(outcomes.slice(2), ["accepted", "accepted", "accepted"]);
    assert.deepEqual(sent, ["m2", "m3", "m4"]);
  });

  it("by bytes, reject-new: the new message is refused while the old ones stay", async () => {
    const drops: TelemetryDrop[] = [];
    const outbox = pump({ maxBytes: 3 * ONE, overflow: "reject-new" }, drops);
    const kept = ["m0", "m1", "m2"].map((id) => outbox.enqueue(message(id)));
    await assert.rejects(outbox.enqueue(message("m3")), (error: unknown) => {
      assert.ok(error instanceof OutboxOverflowError);
      assert.equal(error.policy, "reject-new");
      return true;
    });
    assert.equal(outbox.bytes, 3 * ONE);
    assert.equal(outbox.droppedCount, 1);
    assert.deepEqual(
      drops.map((d) => `${d.messageId}/${d.policy}`),
      ["m3/reject-new"],
    );
    const sent: string[] = [];
    outbox.attach(acceptingLink(sent));
    await Promise.all(kept);
    assert.deepEqual(sent, ["m0", "m1", "m2"]);
    assert.equal(outbox.bytes, 0);
  });

  it("by bytes, drop-oldest: a large message evicts as many small ones as it needs", async () => {
    const outbox = pump({ maxBytes: 4 * ONE, overflow: "drop-oldest" });
    const small = ["m0", "m1", "m2", "m3"].map((id) => outbox.enqueue(message(id)).catch(() => "dropped"));
    const big = message("m4", "x".repeat(2 * ONE));
    const bigSend = outbox.enqueue(big);
    assert.ok(outbox.bytes <= 4 * ONE);
    assert.equal(outbox.droppedCount, 3);
    const sent: string[] = [];
    outbox.attach(acceptingLink(sent));
    assert.equal(await bigSend, "accepted");
    assert.deepEqual(await Promise.all(small), ["dropped", "dropped", "dropped", "accepted"]);
    assert.deepEqual(sent, ["m3", "m4"]);
  });

  it("a message larger than the whole byte bound is refused, counted, under either policy", async () => {
    for (const overflow of ["drop-oldest", "reject-new"] as const) {
      const outbox = pump({ maxBytes: 2 * ONE, overflow });
      const waiting = outbox.enqueue(message("small"));
      await assert.rejects(outbox.enqueue(message("huge", "x".repeat(3 * ONE))), OutboxOverflowError);
      assert.equal(outbox.droppedCount, 1);
      assert.equal(outbox.size, 1, "nothing else gave way for it");
      outbox.attach(acceptingLink([]));
      await waiting;
    }
  });

  it(
    "on disk, drop-oldest pages the oldest in from the disk to drop them when memory holds none",
    withDir(async (dir) => {
      const log = new OutboxLog(join(dir, "outbox.log"));
      const drops: TelemetryDrop[] = [];
      const outbox = pump({ log, readAhead: 2, maxMessages: 5, overflow: "drop-oldest" }, drops);
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) => outbox.enqueue(message(`m${i}`)).catch(() => "dropped")),
      );
      // Two awaited in memory (the read-ahead) and dropped first; the rest were stored on disk at once.
      assert.deepEqual(outcomes.slice(0, 2), ["dropped", "dropped"]);
      assert.deepEqual(outcomes.slice(2), Array(8).fill("stored"));
      assert.equal(outbox.size, 5);
      assert.equal(log.size, 5);
      assert.deepEqual(
        drops.map((d) => d.messageId),
        ["m0", "m1", "m2", "m3", "m4"],
      );
      const sent: string[] = [];
      outbox.attach(acceptingLink(sent));
      await until(() => outbox.size === 0);
      assert.deepEqual(sent, ["m5", "m6", "m7", "m8", "m9"]);
      log.close();
    }),
  );

  /** Ten messages kept on disk, then the log reopened under `bounds`: what is left is delivered, in order. */
  async function reopenedUnder(
    dir: string,
    bounds: Partial<TelemetryPumpOptions>,
  ): Promise<{
    outbox: TelemetryPump;
    drops: string[];
    sent: string[];
  }> {
    const file = join(dir, "outbox.log");
    let log = new OutboxLog(file);
    let outbox = pump({ log, readAhead: 0 });
    for (let i = 0; i < 10; i++) assert.equal(await outbox.enqueue(message(`m${i}`)), "stored");
    log.close();
    log = new OutboxLog(file);
    const drops: TelemetryDrop[] = [];
    outbox = pump({ log, ...bounds }, drops);
    const size = outbox.size;
    const sent: string[] = [];
    outbox.attach(acceptingLink(sent));
    await until(() => outbox.size === 0);
    log.close();
    assert.equal(sent.length, size);
    return { outbox, drops: drops.map((d) => d.messageId), sent };
  }

  it(
    "on disk, reopened under a smaller bound, the oldest give way, counted and reported",
    withDir(async (dir) => {
      const { outbox, drops, sent } = await reopenedUnder(dir, { maxMessages: 4 });
      assert.equal(outbox.droppedCount, 6);
      assert.deepEqual(drops, ["m0", "m1", "m2", "m3", "m4", "m5"]);
      assert.deepEqual(sent, ["m6", "m7", "m8", "m9"]);
    }),
  );

  it(
    "on disk, reopened under a smaller byte bound, the oldest give way until the rest fits exactly",
    withDir(async (dir) => {
      // Exactly four messages' bytes: four stay (the bound is inclusive), six give way.
      const { outbox, drops, sent } = await reopenedUnder(dir, { maxBytes: 4 * messageBytes(message("m0")) });
      assert.equal(outbox.droppedCount, 6);
      assert.deepEqual(drops, ["m0", "m1", "m2", "m3", "m4", "m5"]);
      assert.deepEqual(sent, ["m6", "m7", "m8", "m9"]);
    }),
  );

  it(
    "on disk, 200,000 messages survive a restart and are delivered in order with only the window in memory",
    withDir(async (dir) => {
      const count = 200_000;
      const file = join(dir, "outbox.log");
      const readAhead = 256;
      const window = 16;
      let log = new OutboxLog(file);
      let outbox = pump({ log, readAhead, window, maxMessages: count, maxBytes: 1e9 });
      for (let i = 0; i < count; i++)
        void outbox.enqueue(message(`m${i}`, `{"i":${i}}`)).catch(() => undefined);
      assert.equal(outbox.size, count);
      assert.ok(outbox.inMemory <= readAhead, `${outbox.inMemory} in memory`);
      log.close();

      log = new OutboxLog(file);
      assert.equal(log.size, count);
      outbox = pump({ log, readAhead, window, maxMessages: count, maxBytes: 1e9 });
      assert.equal(outbox.inMemory, 0, "nothing is loaded at open");
      const sent: string[] = [];
      let mostInMemory = 0;
      outbox.attach(acceptingLink(sent, () => (mostInMemory = Math.max(mostInMemory, outbox.inMemory))));
      await until(() => outbox.size === 0);
      assert.equal(sent.length, count);
      for (let i = 0; i < count; i++) if (sent[i] !== `m${i}`) assert.fail(`message ${i} is ${sent[i]}`);
      assert.ok(mostInMemory <= window, `${mostInMemory} in memory at most`);
      assert.ok(log.segmentCount <= 2, `${log.segmentCount} segments left after delivery`);
      log.close();
    }),
  );
});
