// The outbox bounds checked at start-up: most messages and most bytes are whole numbers >= 1, and the overflow
// policy is one of the two known ones; each refusal names the setting.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkBounds, type OutboxBounds } from "../../src/device/outbox.js";

const good: OutboxBounds = { maxMessages: 1, maxBytes: 1, overflow: "drop-oldest" };

describe("outbox bounds check", () => {
  it("takes the smallest bounds under either policy", () => {
    checkBounds(good);
    checkBounds({ ...good, overflow: "reject-new" });
  });

  it("refuses most messages or most bytes that are not a whole number >= 1, by name", () => {
    for (const value of [0, -1, 1.5, Number.NaN]) {
      assert.throws(() => checkBounds({ ...good, maxMessages: value }), {
        name: "RangeError",
        message: "the outbox's most messages must be a whole number >= 1",
      });
      assert.throws(() => checkBounds({ ...good, maxBytes: value }), {
        name: "RangeError",
        message: "the outbox's most bytes must be a whole number >= 1",
      });
    }
  });

  it("refuses an unknown overflow policy, by name", () => {
    assert.throws(() => checkBounds({ ...good, overflow: "drop-newest" as OutboxBounds["overflow"] }), {
      name: "RangeError",
      message: 'unknown outbox overflow policy "drop-newest"',
    });
  });
});
