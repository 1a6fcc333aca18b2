// Twin sync after a connect: subscribe, then GET within what is left of one timeout; patches that arrive
// meanwhile are announced after the twin, and only patches newer than what was seen. The hub link is a fake
// (pure logic: TwinSync only calls enableDesiredUpdates and getTwin).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { OperationTimeoutError } from "../../src/device/errors.js";
import type { HubLink, TwinDocument } from "../../src/device/hub-connection.js";
import { TwinSync } from "../../src/device/twin-sync.js";

type Event = ["twin" | "desired", Record<string, unknown>];

function recorder(): { events: Event[]; sync: TwinSync } {
  const events: Event[] = [];
  const sync = new TwinSync({
    twin: (desired) => events.push(["twin", desired]),
    desired: (patch) => events.push(["desired", patch]),
  });
  return { events, sync };
}

function link(subscribe: Promise<void>, twin: Promise<TwinDocument>): HubLink {
  return { enableDesiredUpdates: () => subscribe, getTwin: () => twin } as unknown as HubLink;
}

const never = new Promise<never>(() => undefined);

function later<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}

describe("twin sync", () => {
  it("a GET that answers within the timeout is taken, and announced before the patches buffered meanwhile", async () => {
    const { events, sync } = recorder();
    const twin: TwinDocument = { desired: { $version: 5, fan: "on" }, reported: { $version: 1 } };
    const fetching = sync.sync(link(Promise.resolve(), later(20, twin)), 1_000, new AbortController().signal);
    sync.onDesired({ $version: 5, fan: "on" }); // not newer than the GET: dropped at announce
    sync.onDesired({ $version: 6, fan: "off" });
    assert.deepEqual(events, [], "nothing is announced while the twin is being fetched");
    assert.deepEqual(await fetching, twin);
    sync.announce();
    assert.deepEqual(events, [
      ["twin", { $version: 5, fan: "on" }],
      ["desired", { $version: 6, fan: "off" }],
    ]);
  });

  it("names the step that got no answer", async () => {
    const signal = new AbortController().signal;
    await assert.rejects(
      recorder().sync.sync(link(never, never), 20, signal),
      (error) =>
        error instanceof OperationTimeoutError &&
        error.message === "desired properties subscribe got no answer within 20 ms",
    );
    await assert.rejects(
      recorder().sync.sync(link(Promise.resolve(), never), 20, signal),
      (error) => error instanceof OperationTimeoutError && /^twin GET got no answer/.test(error.message),
    );
  });

  it("after a failed sync, announce tells nothing and patches flow again", async () => {
    const { events, sync } = recorder();
    await assert.rejects(
      sync.sync(link(Promise.reject(new Error("refused")), never), 50, new AbortController().signal),
    );
    sync.announce();
    assert.deepEqual(events, []);
    sync.onDesired({ $version: 3 });
    assert.deepEqual(
      events,
      [["desired", { $version: 3 }]],
      "a versioned patch before any twin is announced",
    );
  });

  it("drops a stale patch even after a patch without $version", async () => {
    const { events, sync } = recorder();
    const twin: TwinDocument = { desired: { $version: 5 }, reported: {} };
    await sync.sync(link(Promise.resolve(), Promise.resolve(twin)), 1_000, new AbortController().signal);
    sync.announce();
    sync.onDesired({ fan: "auto" });
    sync.onDesired({ $version: 4, fan: "off" });
    assert.deepEqual(events, [
      ["twin", { $version: 5 }],
      ["desired", { fan: "auto" }],
    ]);
  });

  it("a $version that is not a number is no version: later patches are not measured against it", async () => {
    const { events, sync } = recorder();
    const twin: TwinDocument = { desired: { $version: "9" }, reported: {} };
    await sync.sync(link(Promise.resolve(), Promise.resolve(twin)), 1_000, new AbortController().signal);
    sync.announce();
    sync.onDesired({ $version: 5 });
    assert.deepEqual(events, [
      ["twin", { $version: "9" }],
      ["desired", { $version: 5 }],
    ]);
  });
});
