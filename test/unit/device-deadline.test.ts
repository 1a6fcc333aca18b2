// The bounded waits of the device session: an operation raced against a timer and a cancellation signal, a
// sleep a signal cuts short. Besides the outcome, each case checks that no timer outlives the race and no
// listener stays on the signal (a session runs for months: one left per operation would pile up).
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { aborted, settleWithin, sleep, withDeadline } from "../../src/device/deadline.js";
import { OperationTimeoutError, SessionStoppedError } from "../../src/device/errors.js";

/** Timers this process holds now (ours and node:test's; compared before and after, never absolute). */
function pendingTimers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
}

function abortListeners(signal: AbortSignal): number {
  return getEventListeners(signal, "abort").length;
}

const never = (): Promise<never> => new Promise<never>(() => undefined);

describe("withDeadline", () => {
  it("resolves with the operation's value, and leaves no timer or listener behind", async () => {
    const before = pendingTimers();
    const controller = new AbortController();
    assert.equal(await withDeadline(Promise.resolve(7), "op", 60_000, controller.signal), 7);
    assert.equal(pendingTimers(), before);
    assert.equal(abortListeners(controller.signal), 0);
  });

  it("works without a signal", async () => {
    const before = pendingTimers();
    assert.equal(await withDeadline(Promise.resolve("v"), "op", 60_000), "v");
    await assert.rejects(withDeadline(Promise.reject(new Error("no")), "op", 60_000), /no/);
    assert.equal(pendingTimers(), before);
  });

  it("rejects with the operation's own error, or an Error made of what it threw", async () => {
    const before = pendingTimers();
    const controller = new AbortController();
    const own = new RangeError("bad");
    await assert.rejects(
      withDeadline(Promise.reject(own), "op", 60_000, controller.signal),
      (e) => e === own,
    );
    await assert.rejects(
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what an SDK callback may hand on
      withDeadline(Promise.reject("plain text"), "op", 60_000, controller.signal),
      (e: unknown) => e instanceof Error && e.message === "plain text",
    );
    assert.equal(pendingTimers(), before);
    assert.equal(abortListeners(controller.signal), 0);
  });

  it("rejects with OperationTimeoutError naming the operation and the limit when the time is up", async () => {
    const controller = new AbortController();
    await assert.rejects(
      withDeadline(never(), "twin GET", 20, controller.signal),
      (e: unknown) =>
        e instanceof OperationTimeoutError &&
        e.operation === "twin GET" &&
        e.timeoutMs === 20 &&
        e.message === "twin GET got no answer within 20 ms",
    );
    assert.equal(abortListeners(controller.signal), 0);
  });

  it("rejects at once for a signal aborted before, even when the operation has its value ready", async () => {
    const before = pendingTimers();
    const controller = new AbortController();
    const reason = new Error("stopped by the caller");
    controller.abort(reason);
    await assert.rejects(
      withDeadline(Promise.resolve(1), "op", 60_000, controller.signal),
      (e) => e === reason,
    );
    assert.equal(pendingTimers(), before);
    assert.equal(abortListeners(controller.signal), 0);
  });

  it("rejects when the signal aborts during the wait: with its Error, else SessionStoppedError naming the operation", async () => {
    const before = pendingTimers();
    const own = new AbortController();
    const reason = new Error("link lost");
    const ownRace = withDeadline(never(), "op", 60_000, own.signal);
    assert.equal(abortListeners(own.signal), 1);
    own.abort(reason);
    await assert.rejects(ownRace, (e) => e === reason);
    assert.equal(abortListeners(own.signal), 0);

    for (const abort of [
      (c: AbortController) => c.abort(), // a DOMException named AbortError
      (c: AbortController) => c.abort("text"),
      (c: AbortController) => c.abort(Object.assign(new Error("x"), { name: "AbortError" })),
    ]) {
      const controller = new AbortController();
      const race = withDeadline(never(), "DPS registration", 60_000, controller.signal);
      abort(controller);
      await assert.rejects(
        race,
        (e: unknown) =>
          e instanceof SessionStoppedError &&
          e.message === "DPS registration abandoned: the device session was stopped",
      );
    }
    const preAborted = new AbortController();
    preAborted.abort();
    await assert.rejects(withDeadline(never(), "op", 60_000, preAborted.signal), SessionStoppedError);
    assert.equal(pendingTimers(), before);
  });
});

describe("sleep", () => {
  it("resolves true after the time, and leaves no listener on the signal", async () => {
    const controller = new AbortController();
    assert.equal(await sleep(5, controller.signal), true);
    assert.equal(abortListeners(controller.signal), 0);
    assert.equal(await sleep(1), true);
  });

  it("resolves false at once for a signal aborted before, and false when it aborts during the wait, its timer gone", async () => {
    const before = pendingTimers();
    const controller = new AbortController();
    controller.abort();
    assert.equal(await sleep(60_000, controller.signal), false);
    assert.equal(pendingTimers(), before);

    const later = new AbortController();
    const sleeping = sleep(60_000, later.signal);
    assert.equal(pendingTimers(), before + 1);
    later.abort();
    assert.equal(await sleeping, false);
    assert.equal(pendingTimers(), before);
    assert.equal(abortListeners(later.signal), 0);
  });
});

describe("aborted", () => {
  it("resolves with the reason of a signal aborted before or later", async () => {
    const before = new AbortController();
    before.abort("first");
    assert.equal(await aborted(before.signal), "first");
    const later = new AbortController();
    const waiting = aborted(later.signal);
    let settled = false;
    void waiting.then(() => (settled = true));
    await sleep(5);
    assert.equal(settled, false, "nothing before the abort");
    later.abort("second");
    assert.equal(await waiting, "second");
    assert.equal(abortListeners(later.signal), 0);
  });
});

describe("settleWithin", () => {
  it("resolves when the promise settles, either way, and leaves no timer", async () => {
    const before = pendingTimers();
    await settleWithin(Promise.resolve(1), 60_000);
    await settleWithin(Promise.reject(new Error("ignored")), 60_000);
    assert.equal(pendingTimers(), before);
  });

  it("waits for the promise when it settles within the time", async () => {
    let settled = false;
    await settleWithin(
      new Promise<void>((resolve) =>
        setTimeout(() => {
          settled = true;
          resolve();
        }, 20),
      ),
      60_000,
    );
    assert.equal(settled, true);
  });

  it("gives up on a promise that never settles once the time is up", async () => {
    const before = pendingTimers();
    await settleWithin(never(), 5);
    assert.equal(pendingTimers(), before);
  });
});
