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

  it("rejects nonsense settings, naming the setting", () => {
    const refuses = (options: ConstructorParameters<typeof ExponentialBackoff>[0], named: RegExp) =>
      assert.throws(
        () => new ExponentialBackoff(options),
        (e: unknown) => e instanceof RangeError && named.test(e.message),
      );
    refuses({ initialDelayMs: 10, maxDelayMs: 5 }, /initialDelayMs <= maxDelayMs/);
    refuses({ initialDelayMs: -1 }, /0 <= initialDelayMs/);
    refuses({ initialDelayMs: Number.NaN }, /initialDelayMs/);
    refuses({ factor: 0.5 }, /factor must be >= 1/);
    refuses({ jitter: 2 }, /jitter must be within \[0, 1\]/);
    refuses({ jitter: -0.1 }, /jitter must be within \[0, 1\]/);
  });

  it("accepts the edges of each setting", () => {
    const edges = new ExponentialBackoff({ initialDelayMs: 0, maxDelayMs: 0, factor: 1, jitter: 0 });
    assert.equal(edges.delayMs(5), 0);
    const flat = new ExponentialBackoff({
      initialDelayMs: 500,
      maxDelayMs: 500,
      factor: 1,
      jitter: 1,
      random: () => 0,
    });
    assert.deepEqual(
      [1, 2, 3].map((n) => flat.delayMs(n)),
      [500, 500, 500],
    );
  });
});

describe("exponential backoff defaults", () => {
  it("starts at 1 s, doubles, and stops growing at 60 s", () => {
    const backoff = new ExponentialBackoff({ random: () => 0 });
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 1_000].map((n) => backoff.delayMs(n)),
      [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000],
    );
  });

  it("takes off up to a fifth as jitter and waits at least 10 s when throttled", () => {
    const longest = new ExponentialBackoff({ random: () => 1 - Number.EPSILON });
    assert.equal(longest.delayMs(3), 3_200);
    assert.equal(new ExponentialBackoff({ random: () => 0 }).delayMs(1, true), 10_000);
    assert.equal(longest.delayMs(1, true), 10_000);
  });

  it("caps before the jitter, so a long outage still spreads the retries of many gateways", () => {
    // Half the jitter fraction taken off the 60 s cap: 54 s. Jitter applied to the uncapped 64 s (attempt 7)
    // or to an infinite delay and capped afterwards would give 57.6 s and 60 s: every gateway in step.
    const backoff = new ExponentialBackoff({ random: () => 0.5 });
    assert.equal(backoff.delayMs(7), 54_000);
    assert.equal(backoff.delayMs(10_000), 54_000);
    assert.equal(backoff.delayMs(Number.MAX_SAFE_INTEGER), 54_000);
  });

  it("keeps the cap with explicit settings too, jitter included", () => {
    const backoff = new ExponentialBackoff({ initialDelayMs: 100, maxDelayMs: 1_000, random: () => 0.5 });
    assert.equal(backoff.delayMs(5), 900);
    assert.equal(backoff.delayMs(50), 900);
  });
});
