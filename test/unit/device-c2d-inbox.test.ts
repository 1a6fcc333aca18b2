// The C2D inbox: deliveries go to the handler with a lock token and stay unsettled until settled; with no
// handler (a redeploy) they are held for the next handler, and abandoned — never completed — when none comes.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  C2dInbox,
  CloudMessageNotPendingError,
  ValidationError,
  type C2dOutcome,
  type CloudMessage,
  type IncomingCloudMessage,
} from "../../src/device/index.js";

function incoming(text: string) {
  const outcomes: C2dOutcome[] = [];
  const message: IncomingCloudMessage = {
    body: Buffer.from(text),
    messageId: text,
    properties: { line: "A" },
    settle: (outcome) => {
      outcomes.push(outcome);
      return Promise.resolve();
    },
  };
  return { message, outcomes };
}

function inbox(holdMs = 1_000) {
  const events = { warnings: [] as Error[] };
  const box = new C2dInbox({ warning: (error) => events.warnings.push(error) }, holdMs);
  return { box, events };
}

describe("C2D inbox", () => {
  it("hands each delivery to the handler with its own lock token; settle goes to that delivery", async () => {
    const { box } = inbox();
    const received: CloudMessage[] = [];
    box.register((message) => received.push(message));
    const first = incoming("m1");
    const second = incoming("m2");
    box.deliver(first.message, {});
    box.deliver(second.message, {});
    assert.equal(received.length, 2);
    assert.notEqual(received[0]?.lockToken, received[1]?.lockToken);
    assert.equal(received[0]?.body.toString(), "m1");
    assert.deepEqual(received[0]?.properties, { line: "A" });
    assert.equal("settle" in (received[0] ?? {}), false);
    await box.settle(received[1].lockToken, "reject");
    await box.settle(received[0].lockToken, "complete");
    assert.deepEqual(first.outcomes, ["complete"]);
    assert.deepEqual(second.outcomes, ["reject"]);
    await assert.rejects(box.settle(received[0].lockToken, "complete"), CloudMessageNotPendingError);
    assert.deepEqual(first.outcomes, ["complete"]);
  });

  it("refuses an outcome that is not complete, abandon or reject, and the delivery stays unsettled", async () => {
    const { box } = inbox();
    let token = "";
    box.register((message) => (token = message.lockToken));
    const { message, outcomes } = incoming("m1");
    box.deliver(message, {});
    await assert.rejects(box.settle(token, "accept" as C2dOutcome), ValidationError);
    assert.equal(box.unsettledCount, 1);
    await box.settle(token, "abandon");
    assert.deepEqual(outcomes, ["abandon"]);
  });

  it("holds a delivery that comes while no handler is registered, for the handler that comes back", () => {
    const { box } = inbox();
    const remove = box.register(() => undefined);
    remove();
    const { message, outcomes } = incoming("during redeploy");
    box.deliver(message, {});
    assert.equal(box.heldCount, 1);
    const received: CloudMessage[] = [];
    box.register((delivered) => received.push(delivered));
    assert.equal(received[0]?.body.toString(), "during redeploy");
    assert.equal(box.heldCount, 0);
    assert.deepEqual(outcomes, []);
  });

  it("abandons held deliveries when no handler comes within the hold time (never completes them)", async () => {
    const { box } = inbox(30);
    const { message, outcomes } = incoming("nobody");
    box.deliver(message, {});
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(outcomes, []);
    await new Promise((resolve) => setTimeout(resolve, 70));
    assert.deepEqual(outcomes, ["abandon"]);
    assert.equal(box.heldCount, 0);
  });

  it("forgets the deliveries of a connection that is gone (the hub delivers them again)", async () => {
    const { box } = inbox();
    const tokens: string[] = [];
    box.register((message) => tokens.push(message.lockToken));
    const oldLink = {};
    box.deliver(incoming("old").message, oldLink);
    box.deliver(incoming("new").message, {});
    box.forget(oldLink);
    await assert.rejects(box.settle(tokens[0], "complete"), /connection it came on is gone/);
    await box.settle(tokens[1], "complete");
  });

  it("a failed abandon in the background is a warning", async () => {
    const { box, events } = inbox(10);
    const { message } = incoming("m");
    message.settle = () => Promise.reject(new Error("link gone"));
    box.deliver(message, {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(events.warnings[0]?.message, "link gone");
  });
});
