// What the telemetry node hands the device session for each kind of msg.payload, what it refuses before the
// session sees it, and what msg.iothub says on either outcome. The session's send is held, as in
// telemetry-order.test.ts, so each payload is seen exactly as the node passed it.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { Node } from "node-red";
import type { DeviceSession } from "../../src/device/index.js";
import { getNode, helper, loadFlow, nextMessage, startServer, stopServer } from "../support/node-red.js";
import { offlineTelemetryFlow } from "../support/device-flow.js";

const { flow, credentials } = offlineTelemetryFlow();

interface CaughtMessage {
  _msgid: string;
  iothub?: { state?: string; telemetry?: string };
  error: { message: string };
}

/** The session's sends, each answered by `answer` (an outcome, or a rejection with any value). */
function answerSends(session: DeviceSession, answer: () => Promise<string>): unknown[] {
  const payloads: unknown[] = [];
  Object.defineProperty(session, "sendTelemetry", {
    value: (payload: unknown) => {
      payloads.push(payload);
      return answer();
    },
  });
  return payloads;
}

async function settle(): Promise<void> {
  for (let turn = 0; turn < 20; turn++) await nextTurn();
}

async function deviceSession(): Promise<DeviceSession> {
  await loadFlow(flow, credentials);
  const session = (getNode("device") as Node & { session?: DeviceSession }).session;
  assert.ok(session, "the device node made its session");
  return session;
}

describe("telemetry node: payloads and msg.iothub", () => {
  before(startServer);
  after(stopServer);
  afterEach(() => helper.unload());

  it("sends numbers and booleans as text, everything else as it is", async () => {
    const payloads = answerSends(await deviceSession(), () => Promise.resolve("accepted"));
    const buffer = Buffer.from([1, 2, 3]);
    for (const payload of [21.5, 0, true, false, "text", { a: 1 }, buffer]) {
      const out = nextMessage("out");
      getNode("telemetry").receive({ payload });
      await out;
    }
    assert.deepEqual(payloads, ["21.5", "0", "true", "false", "text", { a: 1 }, buffer]);
  });

  it("refuses a null payload before the session sees it", async () => {
    const payloads = answerSends(await deviceSession(), () => Promise.resolve("accepted"));
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ _msgid: "m-null", payload: null });
    const msg = await caught;
    assert.equal(msg._msgid, "m-null");
    assert.equal(msg.error.message, "NodeInputError: msg.payload is empty");
    await settle();
    assert.deepEqual(payloads, []);
  });

  it("refuses a message that comes while the device node is stopping, by name", async () => {
    await deviceSession();
    await getNode("device").close(false); // its session goes; the telemetry node is still there
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ _msgid: "m-late", payload: 1 });
    const msg = await caught;
    assert.equal(msg._msgid, "m-late");
    assert.match(msg.error.message, /: the device configuration is not usable$/);
  });

  it("passes the session's outcome and state on in msg.iothub", async () => {
    const session = await deviceSession();
    answerSends(session, () => Promise.resolve("stored"));
    const out = nextMessage<{ iothub: { state: string; telemetry: string } }>("out");
    getNode("telemetry").receive({ payload: 1 });
    const msg = await out;
    assert.equal(msg.iothub.telemetry, "stored");
    assert.equal(msg.iothub.state, session.status.state);
  });

  it("a refusal that is not an Error still reaches Catch with its text, and msg.iothub has the state", async () => {
    const session = await deviceSession();
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- what a faulty transport may do
    answerSends(session, () => Promise.reject("the link went away"));
    const received: unknown[] = [];
    getNode("out").on("input", (msg: unknown) => received.push(msg));
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ _msgid: "m-refused", payload: 1 });
    const msg = await caught;
    assert.equal(msg._msgid, "m-refused");
    assert.equal(msg.error.message, "Error: the link went away", "wrapped in an Error");
    assert.equal(msg.iothub?.state, session.status.state);
    assert.equal(msg.iothub?.telemetry, undefined);
    await settle();
    assert.equal(received.length, 0);
  });
});
