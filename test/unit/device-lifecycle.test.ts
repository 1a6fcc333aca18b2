// The lifecycle runner on its own, with phases that the test controls: what each phase is given, what a phase
// that fails leads to in each state, what is kept while stopping (close over everything), and how an event
// dispatched from a state listener waits for the current transition.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Lifecycle, type Phase, type SessionEvent } from "../../src/device/lifecycle.js";
import type { SessionState } from "../../src/device/states.js";

const forever: Phase = () => new Promise(() => undefined);
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A phase held until the test lets it return `event`. */
function held(): { phase: Phase; finish: (event: SessionEvent) => void; signals: AbortSignal[] } {
  const signals: AbortSignal[] = [];
  let finish: (event: SessionEvent) => void = () => undefined;
  const phase: Phase = (signal) => {
    signals.push(signal);
    return new Promise((resolve) => (finish = resolve));
  };
  return { phase, finish: (event) => finish(event), signals };
}

function recorder() {
  const entered: Array<{ state: SessionState; event: SessionEvent; previous: SessionState }> = [];
  const failures: Array<{ state: SessionState; error: unknown }> = [];
  return {
    entered,
    failures,
    hooks: {
      entered: (state: SessionState, event: SessionEvent, previous: SessionState) =>
        entered.push({ state, event, previous }),
      phaseFailed: (state: SessionState, error: unknown) => failures.push({ state, error }),
    },
    states: () => entered.map((e) => e.state),
  };
}

describe("lifecycle runner", () => {
  it("tells the hook the new state, the event and the state before; gives each phase the event that entered it", async () => {
    const seen: SessionEvent[] = [];
    const r = recorder();
    const lifecycle = new Lifecycle(
      {
        provisioning: (_signal, enteredBy) => {
          seen.push(enteredBy);
          return Promise.resolve({ type: "retry", error: new Error("dps down") });
        },
        retrying: (_signal, enteredBy) => {
          seen.push(enteredBy);
          return forever(_signal, enteredBy);
        },
      },
      r.hooks,
    );
    lifecycle.dispatch({ type: "start" });
    await turn();
    assert.equal(lifecycle.state, "retrying");
    assert.deepEqual(
      r.entered.map((e) => [e.state, e.event.type, e.previous]),
      [
        ["provisioning", "start", "idle"],
        ["retrying", "retry", "provisioning"],
      ],
    );
    assert.deepEqual(
      seen.map((e) => e.type),
      ["start", "retry"],
    );
    assert.equal((seen[1].error as Error).message, "dps down");
  });

  it("ignores an event the table has no entry for: no hook call, the phase keeps running", async () => {
    const r = recorder();
    const provisioning = held();
    const lifecycle = new Lifecycle({ provisioning: provisioning.phase }, r.hooks);
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "connected" });
    assert.deepEqual(r.states(), ["provisioning"]);
    assert.equal(provisioning.signals.length, 1);
    assert.equal(provisioning.signals[0].aborted, false);
    provisioning.finish({ type: "fatal" });
    await turn();
    assert.equal(lifecycle.state, "error");
  });

  it("aborts the running phase's signal when another event ends its state", () => {
    const provisioning = held();
    const lifecycle = new Lifecycle(
      { provisioning: provisioning.phase, stopping: forever },
      recorder().hooks,
    );
    lifecycle.dispatch({ type: "start" });
    assert.equal(provisioning.signals[0].aborted, false);
    lifecycle.dispatch({ type: "stop" });
    assert.equal(provisioning.signals[0].aborted, true);
  });

  it("a phase that fails: retry in most states, link-lost when connected, stopped when stopping", async () => {
    const r = recorder();
    const boom = new Error("bug");
    let connectedRuns = 0;
    const lifecycle = new Lifecycle(
      {
        provisioning: () => Promise.resolve({ type: "provisioned" }),
        provisioned: () => Promise.resolve({ type: "connect" }),
        connecting: () => Promise.resolve({ type: "connected" }),
        connected: () => {
          connectedRuns += 1;
          return Promise.reject(boom);
        },
        disconnected: forever,
      },
      r.hooks,
    );
    lifecycle.dispatch({ type: "start" });
    for (let i = 0; i < 6; i++) await turn();
    assert.equal(connectedRuns, 1);
    assert.equal(lifecycle.state, "disconnected");
    const last = r.entered[r.entered.length - 1];
    assert.equal(last.event.type, "link-lost");
    assert.equal(last.event.error, boom);
    assert.deepEqual(r.failures, [{ state: "connected", error: boom }]);

    const r2 = recorder();
    const stopping = new Lifecycle(
      {
        provisioning: forever,
        stopping: () => Promise.reject(new Error("dispose failed")),
      },
      r2.hooks,
    );
    stopping.dispatch({ type: "start" });
    stopping.dispatch({ type: "stop" });
    await turn();
    assert.equal(stopping.state, "idle");
    assert.deepEqual(r2.states(), ["provisioning", "stopping", "idle"]);
    assert.equal(r2.entered[2].event.type, "stopped");
    assert.deepEqual(
      r2.failures.map((f) => f.state),
      ["stopping"],
      "a state without a phase (idle) is no failure",
    );

    const r3 = recorder();
    const provisioning = new Lifecycle(
      { provisioning: () => Promise.reject(boom), retrying: forever },
      r3.hooks,
    );
    provisioning.dispatch({ type: "start" });
    await turn();
    assert.equal(provisioning.state, "retrying");
    assert.equal(r3.entered[1].event.type, "retry");
    assert.equal(r3.entered[1].event.error, boom);
  });

  it("a phase overtaken by another event has no say, even with an event the new state takes", async () => {
    const r = recorder();
    const connecting = held();
    const provisioning = held();
    let provisionings = 0;
    const lifecycle = new Lifecycle(
      {
        // The first registration is at once; the second (after reprovision) waits.
        provisioning: (signal, enteredBy) =>
          ++provisionings === 1
            ? Promise.resolve({ type: "provisioned" })
            : provisioning.phase(signal, enteredBy),
        provisioned: () => Promise.resolve({ type: "connect" }),
        connecting: connecting.phase,
      },
      r.hooks,
    );
    lifecycle.dispatch({ type: "start" });
    await turn();
    assert.equal(lifecycle.state, "connecting");
    lifecycle.dispatch({ type: "reprovision" });
    assert.equal(connecting.signals[0].aborted, true);
    // "retry" is an event provisioning takes, but not from the connecting phase it overtook.
    connecting.finish({ type: "retry", error: new Error("late") });
    await turn();
    assert.equal(lifecycle.state, "provisioning");
    provisioning.finish({ type: "retry" });
    await turn();
    assert.equal(lifecycle.state, "retrying", "the running phase's own result still counts");
  });

  it("a phase that throws something not an Error at once reports it as an Error", async () => {
    const r = recorder();
    const lifecycle = new Lifecycle(
      {
        provisioning: () => {
          // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a careless phase might do
          throw "plain text";
        },
        retrying: forever,
      },
      r.hooks,
    );
    lifecycle.dispatch({ type: "start" });
    await turn();
    assert.equal(r.failures.length, 1);
    const reported = r.failures[0].error;
    assert.ok(reported instanceof Error);
    assert.equal(reported.message, "plain text");
    assert.equal(lifecycle.state, "retrying");
  });

  it("an event dispatched by the state hook waits until the current transition has started its phase", () => {
    const order: string[] = [];
    const lifecycle: Lifecycle = new Lifecycle(
      {
        provisioning: (signal) => {
          order.push("provisioning phase");
          signal.addEventListener("abort", () => order.push("provisioning aborted"));
          return new Promise(() => undefined);
        },
        stopping: () => {
          order.push("stopping phase");
          return new Promise(() => undefined);
        },
      },
      {
        entered: (state) => {
          order.push(`entered ${state}`);
          if (state === "provisioning") lifecycle.dispatch({ type: "stop" });
        },
        phaseFailed: () => undefined,
      },
    );
    lifecycle.dispatch({ type: "start" });
    assert.deepEqual(order, [
      "entered provisioning",
      "provisioning phase",
      "provisioning aborted",
      "entered stopping",
      "stopping phase",
    ]);
  });

  it("keeps, while stopping, the last of start or reprovision, carried out once stopped with its own event", async () => {
    const r = recorder();
    const stopping = held();
    const seen: SessionEvent[] = [];
    const lifecycle = new Lifecycle(
      {
        provisioning: (_signal, enteredBy) => {
          seen.push(enteredBy);
          return new Promise(() => undefined);
        },
        stopping: stopping.phase,
      },
      r.hooks,
    );
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "stop" });
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "reprovision" });
    assert.equal(lifecycle.state, "stopping");
    stopping.finish({ type: "stopped" });
    await turn();
    assert.deepEqual(r.states(), ["provisioning", "stopping", "idle", "provisioning"]);
    assert.deepEqual(
      seen.map((e) => e.type),
      ["start", "reprovision"],
    );
  });

  it("keeps a close asked for while stopping over any start or stop asked for after it", async () => {
    for (const after of ["start", "stop", "reprovision"] as const) {
      const r = recorder();
      const stopping = held();
      const lifecycle = new Lifecycle({ provisioning: forever, stopping: stopping.phase }, r.hooks);
      lifecycle.dispatch({ type: "start" });
      lifecycle.dispatch({ type: "stop" });
      lifecycle.dispatch({ type: "close" });
      lifecycle.dispatch({ type: after });
      stopping.finish({ type: "stopped" });
      await turn();
      assert.equal(lifecycle.state, "closed", `close, then ${after}`);
      assert.deepEqual(r.states(), ["provisioning", "stopping", "idle", "closed"]);
    }
  });

  it("close while running stops first: the stopping phase runs, then idle, then closed", async () => {
    const r = recorder();
    const stopping = held();
    const lifecycle = new Lifecycle({ provisioning: forever, stopping: stopping.phase }, r.hooks);
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "close" });
    assert.equal(lifecycle.state, "stopping");
    assert.equal(stopping.signals.length, 1);
    lifecycle.dispatch({ type: "start" });
    stopping.finish({ type: "stopped" });
    await turn();
    assert.deepEqual(r.states(), ["provisioning", "stopping", "idle", "closed"]);
    assert.equal(r.entered[3].event.type, "close");
  });

  it("a stop while stopping, with nothing kept, stays stopped", async () => {
    const r = recorder();
    const stopping = held();
    const lifecycle = new Lifecycle({ provisioning: forever, stopping: stopping.phase }, r.hooks);
    lifecycle.dispatch({ type: "start" });
    lifecycle.dispatch({ type: "stop" });
    lifecycle.dispatch({ type: "stop" });
    stopping.finish({ type: "stopped" });
    await turn();
    assert.equal(lifecycle.state, "idle");
    assert.equal(stopping.signals.length, 1, "the stopping phase ran once");
  });
});
