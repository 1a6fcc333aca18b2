import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ExponentialBackoff } from "../../src/device/backoff.js";

describe("exponential backoff", () => {
  it("doubles from the initial delay without jitter", () => {
    const backoff = new ExponentialBackoff({ initialDelayMs: 100, maxDelayMs: 10_000, jitter: 0 });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoff.delayMs(n)),
      [100, 200, 400, 800, 1600],
    );
  });

  it("never exceeds the cap, even for huge attempt numbers", () => {
    const backoff = new ExponentialBackoff({
      initialDelayMs: 1000,
      maxDelayMs: 60_000,
      jitter: 0.5,
      random: () => 0,
    });
    assert.equal(backoff.delayMs(7), 60_000);
    assert.equal(backoff.delayMs(10_000), 60_000);
    assert.ok(Number.isFinite(backoff.delayMs(Number.MAX_SAFE_INTEGER)));
  });

  it("jitter only shortens the delay, by at most the jitter fraction", () => {
    const low = new ExponentialBackoff({ initialDelayMs: 1000, jitter: 0.2, random: () => 0.999999 });
    const high = new ExponentialBackoff({ initialDelayMs: 1000, jitter: 0.2, random: () => 0 });
    assert.equal(high.delayMs(3), 4000);
    assert.equal(low.delayMs(3), 3200);
    const random = new ExponentialBackoff({ initialDelayMs: 1000, jitter: 0.2 });
    for (let i = 0; i < 200; i++) {
      const delay = random.delayMs(3);
      assert.ok(delay >= 3200 && delay <= 4000, `delay ${delay} within [3200, 4000]`);
    }
  });

  it("waits at least the throttled minimum when the service throttles", () => {
    const backoff = new ExponentialBackoff({ initialDelayMs: 100, throttledMinDelayMs: 10_000, jitter: 0 });
    assert.equal(backoff.delayMs(1, true), 10_000);
    assert.equal(backoff.delayMs(1, false), 100);
  });

  it("rejects nonsense settings", () => {
    assert.throws(() => new ExponentialBackoff({ initialDelayMs: 10, maxDelayMs: 5 }), RangeError);
    assert.throws(() => new ExponentialBackoff({ factor: 0.5 }), RangeError);
    assert.throws(() => new ExponentialBackoff({ jitter: 2 }), RangeError);
  });
});
