// The C2D inbox's edges: every property of a message reaches the handler and absent ones stay absent, a
// remover called twice, refusals by name, a connection that goes while its deliveries are held, clear(), the
// hold timer after a handler came and went, and a throwing handler.
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import {
  C2dInbox,
  CloudMessageNotPendingError,
  type C2dOutcome,
  type CloudMessage,
  type IncomingCloudMessage,
} from "../../src/device/index.js";

function incoming(text: string, extra: Partial<IncomingCloudMessage> = {}) {
  const outcomes: C2dOutcome[] = [];
  const message: IncomingCloudMessage = {
    body: Buffer.from(text),
    properties: {},
    settle: (outcome) => {
      outcomes.push(outcome);
      return Promise.resolve();
    },
    ...extra,
  };
  return { message, outcomes };
}

function inbox(holdMs = 1_000) {
  const warnings: Error[] = [];
  const box = new C2dInbox({ warning: (error) => warnings.push(error) }, holdMs);
  return { box, warnings };
}

function withTimers(run: () => void | Promise<void>): () => Promise<void> {
  return async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      await run();
    } finally {
      mock.timers.reset();
    }
  };
}

describe("C2D inbox edges", () => {
  it("hands over every property the message has, and no key for those it lacks", () => {
    const { box } = inbox();
    const received: CloudMessage[] = [];
    box.register((message) => received.push(message));
    const full = {
      contentType: "application/json",
      contentEncoding: "utf-8",
      messageId: "m1",
      correlationId: "c1",
      expiryTimeUtc: "2030-01-01T00:00:00.000Z",
    };
    box.deliver(incoming("a", full).message, {});
    box.deliver(incoming("b").message, {});
    const { lockToken: _first, body: _b1, properties: _p1, ...firstRest } = received[0];
    assert.deepEqual(firstRest, full);
    assert.deepEqual(Object.keys(received[1]).sort(), ["body", "lockToken", "properties"]);
  });

  it("a remover called twice removes only its own handler", () => {
    const { box } = inbox();
    const remove = box.register(() => undefined);
    box.register(() => undefined);
    remove();
    remove();
    assert.equal(box.listening, true);
  });

  it("refuses an unknown outcome and an unknown lock token by name", async () => {
    const { box } = inbox();
    await assert.rejects(box.settle("x", "accept" as C2dOutcome), {
      name: "ValidationError",
      message: 'a cloud-to-device message is settled with complete, abandon or reject, not "accept"',
    });
    await assert.rejects(
      box.settle("t1", "complete"),
      (error) =>
        error instanceof CloudMessageNotPendingError &&
        error.name === "CloudMessageNotPendingError" &&
        error.message ===
          "no cloud-to-device message with lock token t1 waits to be settled: it was settled already, or the connection it came on is gone (the hub delivers it again)",
    );
  });

  it(
    "a connection that goes takes only its own held deliveries; the others are still abandoned in time",
    withTimers(() => {
      const { box } = inbox(1_000);
      const gone = {};
      const kept = {};
      const a = incoming("a");
      const b = incoming("b");
      box.deliver(a.message, gone);
      box.deliver(b.message, kept);
      box.forget(gone);
      assert.equal(box.heldCount, 1);
      mock.timers.tick(1_000);
      assert.deepEqual(a.outcomes, []);
      assert.deepEqual(b.outcomes, ["abandon"]);
    }),
  );

  it(
    "when nothing is held any more the hold timer stops: a later delivery gets its full grace period",
    withTimers(() => {
      const { box } = inbox(1_000);
      const gone = {};
      box.deliver(incoming("a").message, gone);
      box.forget(gone);
      mock.timers.tick(500);
      const later = incoming("c");
      box.deliver(later.message, {});
      mock.timers.tick(600); // 1,100 ms after the first, 600 after this one
      assert.deepEqual(later.outcomes, []);
      mock.timers.tick(400);
      assert.deepEqual(later.outcomes, ["abandon"]);
    }),
  );

  it(
    "a handler that came and went stops the hold timer: the next held delivery gets its full grace period",
    withTimers(() => {
      const { box } = inbox(1_000);
      box.deliver(incoming("a").message, {});
      mock.timers.tick(100);
      const remove = box.register(() => undefined);
      remove();
      mock.timers.tick(400);
      const later = incoming("b");
      box.deliver(later.message, {});
      mock.timers.tick(600);
      assert.deepEqual(later.outcomes, [], "not abandoned on the first delivery's timer");
      mock.timers.tick(400);
      assert.deepEqual(later.outcomes, ["abandon"]);
    }),
  );

  it(
    "clear drops what is held and unsettled, and stops the hold timer",
    withTimers(async () => {
      const { box } = inbox(1_000);
      const received: CloudMessage[] = [];
      const remove = box.register((message) => received.push(message));
      box.deliver(incoming("a").message, {});
      remove();
      box.deliver(incoming("b").message, {});
      box.clear();
      assert.equal(box.heldCount, 0);
      assert.equal(box.unsettledCount, 0);
      await assert.rejects(box.settle(received[0].lockToken, "complete"), CloudMessageNotPendingError);
      mock.timers.tick(500);
      const later = incoming("c");
      box.deliver(later.message, {});
      mock.timers.tick(600);
      assert.deepEqual(later.outcomes, []);
    }),
  );

  it("a handler that throws is a warning, and the delivery stays unsettled", () => {
    const { box, warnings } = inbox();
    box.register(() => {
      throw new Error("handler broke");
    });
    box.deliver(incoming("a").message, {});
    assert.deepEqual(
      warnings.map((warning) => warning.message),
      ["handler broke"],
    );
    assert.equal(box.unsettledCount, 1);
  });
});
