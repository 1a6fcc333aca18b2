// The session's lifecycle table and its runner: every state reachable, stop from anywhere, and a start or
// reprovision asked for while stopping carried out once stopped.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lifecycle, type SessionEvent } from "../../src/device/lifecycle.js";
import {
  SESSION_EVENTS,
  SESSION_STATES,
  TRANSITIONS,
  nextState,
  type SessionState,
} from "../../src/device/states.js";

describe("session state table", () => {
  it("walks the happy path and the ways back after a fault", () => {
    const walk = (from: SessionState, events: SessionEvent["type"][]): SessionState[] => {
      const states: SessionState[] = [];
      let state = from;
      for (const event of events) {
        const next = nextState(state, event);
        assert.ok(next, `${state} + ${event}`);
        state = next;
        states.push(state);
      }
      return states;
    };
    assert.deepEqual(walk("idle", ["start", "provisioned", "connect", "connected"]), [
      "provisioning",
      "provisioned",
      "connecting",
      "connected",
    ]);
    assert.deepEqual(walk("connected", ["link-lost", "retry", "retry-connect", "connected"]), [
      "disconnected",
      "retrying",
      "connecting",
      "connected",
    ]);
    assert.deepEqual(walk("connecting", ["identity-rejected", "provisioned"]), [
      "provisioning",
      "provisioned",
    ]);
    assert.deepEqual(walk("connecting", ["retry", "retry-provision"]), ["retrying", "provisioning"]);
    assert.deepEqual(walk("error", ["start"]), ["provisioning"]);
  });

  it("stop leads from every running state through stopping to idle", () => {
    for (const state of SESSION_STATES) {
      if (state === "idle" || state === "closed" || state === "stopping") continue;
      assert.equal(nextState(state, "stop"), "stopping", state);
    }
    assert.equal(nextState("stopping", "stopped"), "idle");
  });

  it("only a configuration problem leads to error, and nothing leaves closed", () => {
    for (const [from, row] of Object.entries(TRANSITIONS)) {
      for (const [event, to] of Object.entries(row)) {
        if (to === "error") assert.equal(event, "fatal", `${from} + ${event}`);
      }
    }
    for (const event of SESSION_EVENTS) assert.equal(nextState("closed", event), undefined);
  });

  it("ignores what makes no sense in a state instead of failing", () => {
    assert.equal(nextState("idle", "connected"), undefined);
    assert.equal(nextState("connected", "start"), undefined);
    assert.equal(nextState("provisioning", "reprovision"), undefined);
    assert.equal(nextState("retrying", "connected"), undefined);
  });

  it("names only known states", () => {
    for (const row of Object.values(TRANSITIONS)) {
      for (const to of Object.values(row)) assert.ok(SESSION_STATES.includes(to), String(to));
    }
  });
});

describe("lifecycle runner", () => {
  function gate(): { promise: Promise<void>; open: () => void } {
    let open = (): void => undefined;
    const promise = new Promise<void>((resolve) => (open = resolve));
    return { promise, open };
  }

  it("a start while stopping is kept and carried out once stopped; a stop after it cancels it", async () => {
    const stopGate = gate();
    const seen: SessionState[] = [];
    const lifecycle = new Lifecycle(
      {
        provisioning: () => new Promise(() => undefined),
        stopping: async () => {
          await stopGate.promise;
          return { type: "stopped" };
        },
      },
      { entered: (state) => seen.push(state), phaseFailed: () => undefined },
    );
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "stop" });
    lifecycle.dispatch({ type: "start" });
    assert.equal(lifecycle.state, "stopping");
    stopGate.open();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, ["provisioning", "stopping", "idle", "provisioning"]);

    const second = gate();
    const lifecycle2 = new Lifecycle(
      {
        provisioning: () => new Promise(() => undefined),
        stopping: async () => {
          await second.promise;
          return { type: "stopped" };
        },
      },
      { entered: () => undefined, phaseFailed: () => undefined },
    );
    lifecycle2.dispatch({ type: "start" });
    lifecycle2.dispatch({ type: "stop" });
    lifecycle2.dispatch({ type: "start" });
    lifecycle2.dispatch({ type: "stop" });
    second.open();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lifecycle2.state, "idle");
  });

  it("close while running stops first and then ends in closed", async () => {
    const lifecycle = new Lifecycle(
      {
        provisioning: () => new Promise(() => undefined),
        stopping: () => Promise.resolve({ type: "stopped" }),
      },
      { entered: () => undefined, phaseFailed: () => undefined },
    );
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "close" });
    lifecycle.dispatch({ type: "start" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lifecycle.state, "closed");
  });

  it("a cancelled phase's late result does not count", async () => {
    const late = gate();
    const lifecycle = new Lifecycle(
      {
        provisioning: async () => {
          await late.promise;
          return { type: "provisioned" };
        },
        stopping: () => Promise.resolve({ type: "stopped" }),
      },
      { entered: () => undefined, phaseFailed: () => undefined },
    );
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "stop" });
    await new Promise((resolve) => setImmediate(resolve));
    late.open();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(lifecycle.state, "idle");
  });

  it("a phase that throws is reported and never leaves the session stuck", async () => {
    const failures: unknown[] = [];
    let attempts = 0;
    const lifecycle = new Lifecycle(
      {
        provisioning: () => {
          attempts += 1;
          if (attempts === 1) throw new Error("bug");
          return new Promise(() => undefined);
        },
        retrying: () => Promise.resolve({ type: "retry-provision" }),
      },
      { entered: () => undefined, phaseFailed: (_state, error) => failures.push(error) },
    );
    lifecycle.dispatch({ type: "start" });
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(failures.length, 1);
    assert.equal(lifecycle.state, "provisioning");
    assert.equal(attempts, 2);
  });
});
