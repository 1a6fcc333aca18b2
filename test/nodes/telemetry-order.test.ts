// The telemetry node's contract: the msg goes on only once the hub accepted the message, and a refused
// message reaches Catch instead. The device session's send is held here, so the order is seen directly.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { Node } from "node-red";
import type { DeviceSession } from "../../src/device/index.js";
import { getNode, helper, loadFlow, nextMessage, startServer, stopServer } from "../support/node-red.js";
import { offlineTelemetryFlow } from "../support/device-flow.js";

const { flow, credentials } = offlineTelemetryFlow();

interface HeldSend {
  payloads: unknown[];
  accept(): void;
  refuse(error: Error): void;
}

/** Replaces this session's sendTelemetry with one that waits until the test accepts or refuses. */
function holdSends(session: DeviceSession): HeldSend {
  const held: HeldSend & { settle?: { resolve(outcome: string): void; reject(e: Error): void } } = {
    payloads: [],
    accept: () => held.settle?.resolve("accepted"),
    refuse: (error) => held.settle?.reject(error),
  };
  Object.defineProperty(session, "sendTelemetry", {
    value: (payload: unknown) => {
      held.payloads.push(payload);
      return new Promise<string>((resolve, reject) => (held.settle = { resolve, reject }));
    },
  });
  return held;
}

/** Lets everything already queued run (Node-RED delivers messages asynchronously). */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 20; turn++) await nextTurn();
}

describe("telemetry node: the msg leaves only after the hub accepted it", () => {
  before(startServer);
  after(stopServer);
  afterEach(() => helper.unload());

  it("sends nothing on while the hub has not answered, then the same msg with msg.iothub", async () => {
    await loadFlow(flow, credentials);
    const session = (getNode("device") as Node & { session?: DeviceSession }).session;
    assert.ok(session, "the device node made its session");
    const held = holdSends(session);
    const received: unknown[] = [];
    getNode("out").on("input", (msg: unknown) => received.push(msg));

    getNode("telemetry").receive({ _msgid: "m-1", payload: { temperature: 21.5 } });
    await settle();
    assert.deepEqual(held.payloads, [{ temperature: 21.5 }], "the session was asked to send");
    assert.equal(received.length, 0, "no output before the hub accepted the message");

    const out = nextMessage<{ _msgid: string; payload: unknown; iothub?: unknown }>("out");
    held.accept();
    const msg = await out;
    assert.equal(msg._msgid, "m-1");
    assert.deepEqual(msg.payload, { temperature: 21.5 });
    assert.ok(msg.iothub && typeof msg.iothub === "object", "msg.iothub set");
    assert.equal((msg.iothub as { telemetry?: string }).telemetry, "accepted");
  });

  it("a refused message never goes on: Catch gets it with the hub's reason", async () => {
    await loadFlow(flow, credentials);
    const session = (getNode("device") as Node & { session?: DeviceSession }).session;
    assert.ok(session);
    const held = holdSends(session);
    const received: unknown[] = [];
    getNode("out").on("input", (msg: unknown) => received.push(msg));

    const caught = nextMessage<{ _msgid: string; error: { message: string } }>("caught");
    getNode("telemetry").receive({ _msgid: "m-2", payload: "x" });
    await settle();
    assert.equal(received.length, 0);
    held.refuse(new Error("message too large for the hub"));
    const msg = await caught;
    assert.equal(msg._msgid, "m-2");
    assert.match(msg.error.message, /too large/);
    await settle();
    assert.equal(received.length, 0, "a refused message is not sent on");
  });
});
