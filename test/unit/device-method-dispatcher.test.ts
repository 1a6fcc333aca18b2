// The direct-method dispatcher: which handler takes a call, 404 at once for a name nobody handles, 504 when
// the flow does not answer in time, answers IoT Hub would refuse, calls of a connection that is gone.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MethodCallNotWaitingError,
  MethodDispatcher,
  ValidationError,
  type IncomingMethodCall,
  type MethodCall,
} from "../../src/device/index.js";

interface Answer {
  status: number;
  payload: unknown;
}

function incoming(methodName: string, requestId: string, payload: unknown = { x: 1 }) {
  const answers: Answer[] = [];
  const call: IncomingMethodCall = {
    requestId,
    methodName,
    payload,
    respond: (status, answer) => {
      answers.push({ status, payload: answer });
      return Promise.resolve();
    },
  };
  return { call, answers };
}

function dispatcher(): { methods: MethodDispatcher; warnings: Error[]; notImplemented: string[] } {
  const warnings: Error[] = [];
  const notImplemented: string[] = [];
  const methods = new MethodDispatcher({
    warning: (error) => warnings.push(error),
    notImplemented: (name) => notImplemented.push(name),
  });
  return { methods, warnings, notImplemented };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("method dispatcher", () => {
  it("gives a call to the handler that names it, before the one for all methods", () => {
    const { methods } = dispatcher();
    const named: MethodCall[] = [];
    const all: MethodCall[] = [];
    methods.register((call) => all.push(call));
    methods.register((call) => named.push(call), { names: ["restart", " reboot "] });
    methods.dispatch(incoming("reboot", "r1").call, {});
    methods.dispatch(incoming("recipe", "r2").call, {});
    assert.deepEqual(
      named.map((call) => call.requestId),
      ["r1"],
    );
    assert.deepEqual(
      all.map((call) => [call.requestId, call.methodName, call.payload]),
      [["r2", "recipe", { x: 1 }]],
    );
    assert.deepEqual(methods.names.sort(), ["reboot", "restart"]);
  });

  it("answers 404 at once for a name nobody handles, says so, and keeps nothing waiting", async () => {
    const { methods, notImplemented } = dispatcher();
    methods.register(() => undefined, { names: ["restart"] });
    const { call, answers } = incoming("selfDestruct", "r1");
    methods.dispatch(call, {});
    await flush();
    assert.equal(answers.length, 1);
    assert.equal(answers[0]?.status, 404);
    assert.match(JSON.stringify(answers[0]?.payload), /selfDestruct.*not implemented/);
    assert.equal(methods.waitingCount, 0);
    assert.deepEqual(notImplemented, ["selfDestruct"]);
  });

  it("answers 504 when the handler does not answer within its response timeout; a late answer is refused", async () => {
    const { methods } = dispatcher();
    const unanswered: Array<[string, number]> = [];
    methods.register(() => undefined, {
      responseTimeoutMs: 30,
      unanswered: (call, timeoutMs) => unanswered.push([call.requestId, timeoutMs]),
    });
    const { call, answers } = incoming("slow", "r1");
    methods.dispatch(call, {});
    assert.equal(methods.waitingCount, 1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [504],
    );
    assert.match(JSON.stringify(answers[0]?.payload), /no answer .* within 30 ms/);
    assert.deepEqual(unanswered, [["r1", 30]]);
    await assert.rejects(methods.respond("r1", 200, {}), MethodCallNotWaitingError);
    assert.equal(answers.length, 1);
  });

  it("sends the flow's answer once; a second answer for the same call is refused", async () => {
    const { methods } = dispatcher();
    methods.register(() => undefined);
    const { call, answers } = incoming("read", "r1");
    methods.dispatch(call, {});
    await methods.respond("r1", 200, { value: 42 });
    await assert.rejects(methods.respond("r1", 200, { value: 43 }), MethodCallNotWaitingError);
    assert.deepEqual(answers, [{ status: 200, payload: { value: 42 } }]);
  });

  it("refuses answers IoT Hub would not carry, and the call keeps waiting for a good one", async () => {
    const { methods } = dispatcher();
    methods.register(() => undefined);
    const { call, answers } = incoming("read", "r1");
    methods.dispatch(call, {});
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await assert.rejects(methods.respond("r1", 200, circular), ValidationError);
    await assert.rejects(
      methods.respond("r1", 200, { big: "x".repeat(128 * 1024) }),
      /131\d+ bytes .* 131072/,
    );
    await assert.rejects(methods.respond("r1", 200, 10n), /JSON-serialisable/);
    await assert.rejects(
      methods.respond("r1", 200, () => 1),
      /JSON-serialisable, not a function/,
    );
    await assert.rejects(methods.respond("r1", 20.5, {}), /status/);
    assert.equal(answers.length, 0);
    // The largest payload that fits goes through.
    const fits = "x".repeat(128 * 1024 - 2);
    await methods.respond("r1", 200, fits);
    assert.equal(answers[0]?.payload, fits);
  });

  it("forgets the calls of a connection that is gone, and only those", async () => {
    const { methods } = dispatcher();
    methods.register(() => undefined);
    const oldLink = {};
    const newLink = {};
    methods.dispatch(incoming("a", "r1").call, oldLink);
    const current = incoming("b", "r2");
    methods.dispatch(current.call, newLink);
    methods.forget(oldLink);
    await assert.rejects(methods.respond("r1", 200, {}), MethodCallNotWaitingError);
    await methods.respond("r2", 200, {});
    assert.equal(current.answers.length, 1);
  });

  it("a removed handler takes no more calls: the next call of its name is answered 404", async () => {
    const { methods } = dispatcher();
    const remove = methods.register(() => undefined, { names: ["restart"] });
    remove();
    assert.equal(methods.listening, false);
    const { call, answers } = incoming("restart", "r1");
    methods.dispatch(call, {});
    await flush();
    assert.equal(answers[0]?.status, 404);
  });

  it("a throwing handler is a warning, not a crash; the call still gets its 504", async () => {
    const { methods, warnings } = dispatcher();
    methods.register(
      () => {
        throw new Error("flow broke");
      },
      { responseTimeoutMs: 20 },
    );
    const { call, answers } = incoming("x", "r1");
    methods.dispatch(call, {});
    assert.equal(warnings[0]?.message, "flow broke");
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(answers[0]?.status, 504);
  });
});
