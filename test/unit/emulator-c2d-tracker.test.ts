// The emulator page's C2D state tracker: the hub's "c2dFeedback" events move a message the page sent through
// its states; a final state stays final, other hubs' and devices' events leave it alone, and the oldest
// entries are forgotten past the bound. The hub is stood in for by a plain event emitter (pure logic).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { C2dFeedbackEvent, HubService } from "../../src/emulator/hub/types.js";
import { C2dTracker, TRACKED_MAX } from "../../src/emulator/web/c2d-tracker.js";

const HUB = "hub-a.azure-devices.net";

function setUp() {
  const events = new EventEmitter();
  const tracker = new C2dTracker(events as unknown as HubService);
  const feedback = (outcome: C2dFeedbackEvent["outcome"], messageId = "m-1", deviceId = "dev-1", hub = HUB) =>
    events.emit("c2dFeedback", { hubHostName: hub, deviceId, messageId, outcome } satisfies C2dFeedbackEvent);
  return { events, tracker, feedback };
}

describe("C2dTracker", () => {
  it("starts queued, counts abandons, and ends with the feedback status code of the final state", () => {
    const { tracker, feedback } = setUp();
    const sent = tracker.sent(HUB, "dev-1", { messageId: "m-1", ack: "full" });
    assert.equal(sent.state, "queued");
    assert.equal(sent.final, false);
    feedback("abandoned");
    feedback("abandoned");
    assert.deepEqual(
      [tracker.get(HUB, "dev-1", "m-1")?.state, tracker.get(HUB, "dev-1", "m-1")?.abandonCount],
      ["abandoned", 2],
    );
    feedback("completed");
    const done = tracker.get(HUB, "dev-1", "m-1");
    assert.equal(done?.state, "completed");
    assert.equal(done?.final, true);
    assert.equal(done?.feedbackStatusCode, "Success");
  });

  for (const [outcome, status] of [
    ["rejected", "Rejected"],
    ["expired", "Expired"],
    ["deadLettered", "DeliveryCountExceeded"],
  ] as const) {
    it(`maps ${outcome} to the feedback status ${status}, and ignores anything after it`, () => {
      const { tracker, feedback } = setUp();
      tracker.sent(HUB, "dev-1", { messageId: "m-1", ack: "none" });
      feedback(outcome);
      feedback("completed");
      const view = tracker.get(HUB, "dev-1", "m-1");
      assert.equal(view?.state, outcome);
      assert.equal(view?.feedbackStatusCode, status);
    });
  }

  it("matches the hub name case-insensitively, but not another device or hub", () => {
    const { tracker, feedback } = setUp();
    tracker.sent(HUB, "dev-1", { messageId: "m-1", ack: "none" });
    feedback("completed", "m-1", "dev-2");
    feedback("completed", "m-1", "dev-1", "hub-b.azure-devices.net");
    assert.equal(tracker.get(HUB, "dev-1", "m-1")?.state, "queued");
    feedback("completed", "m-1", "dev-1", HUB.toUpperCase());
    assert.equal(tracker.get(HUB, "dev-1", "m-1")?.state, "completed");
  });

  it("hands out copies, forgets refused messages, and stops listening when closed", () => {
    const { events, tracker, feedback } = setUp();
    const sent = tracker.sent(HUB, "dev-1", { messageId: "m-1", ack: "none" });
    sent.state = "completed";
    assert.equal(tracker.get(HUB, "dev-1", "m-1")?.state, "queued");
    tracker.sent(HUB, "dev-1", { messageId: "m-2", ack: "none" });
    tracker.forget(HUB, "dev-1", "m-2");
    assert.equal(tracker.get(HUB, "dev-1", "m-2"), undefined);
    tracker.close();
    assert.equal(events.listenerCount("c2dFeedback"), 0);
    feedback("completed");
    assert.equal(tracker.get(HUB, "dev-1", "m-1")?.state, "queued");
  });

  it(`keeps the newest ${TRACKED_MAX} messages`, () => {
    const { tracker } = setUp();
    for (let n = 0; n <= TRACKED_MAX; n++) tracker.sent(HUB, "dev-1", { messageId: `m-${n}`, ack: "none" });
    assert.equal(tracker.get(HUB, "dev-1", "m-0"), undefined);
    assert.equal(tracker.get(HUB, "dev-1", "m-1")?.state, "queued");
    assert.equal(tracker.get(HUB, "dev-1", `m-${TRACKED_MAX}`)?.state, "queued");
  });
});
