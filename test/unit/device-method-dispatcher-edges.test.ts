// The direct-method dispatcher's edges: the bounds of a response timeout, method names that are blank, an
// answer without a requestId, the limits of a status code and payload, a call superseded by another with the
// same requestId, and listeners or answers that fail (each a warning, never a crash).
import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import {
  MethodCallNotWaitingError,
  MethodDispatcher,
  ValidationError,
  validateMethodAnswer,
  type IncomingMethodCall,
} from "../../src/device/index.js";

function incoming(methodName: string, requestId: string, fails = false) {
  const answers: Array<{ status: number; payload: unknown }> = [];
  const call: IncomingMethodCall = {
    requestId,
    methodName,
    payload: undefined,
    respond: (status, payload) => {
      answers.push({ status, payload });
      return fails ? Promise.reject(new Error("link gone")) : Promise.resolve();
    },
  };
  return { call, answers };
}

function dispatcher(notImplemented: (name: string) => void = () => undefined) {
  const warnings: Error[] = [];
  const methods = new MethodDispatcher({ warning: (error) => warnings.push(error), notImplemented });
  return { methods, warnings };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("method dispatcher edges", () => {
  it("refuses a response timeout that is not a positive number of ms, and takes 1 ms", () => {
    const { methods } = dispatcher();
    for (const responseTimeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => methods.register(() => undefined, { responseTimeoutMs }), {
        name: "ValidationError",
        message: `a method response timeout must be a positive number of ms, not ${responseTimeoutMs}`,
      });
    }
    assert.equal(typeof methods.register(() => undefined, { responseTimeoutMs: 1 }), "function");
  });

  it("a handler with no names, or only blank ones, takes every method", () => {
    for (const names of [[], ["  ", ""]]) {
      const { methods } = dispatcher();
      const taken: string[] = [];
      methods.register((call) => taken.push(call.methodName), { names });
      methods.dispatch(incoming("reboot", "1").call, {});
      assert.deepEqual(taken, ["reboot"], JSON.stringify(names));
      assert.deepEqual(methods.names, []);
    }
  });

  it("an answer without a requestId is refused by name, not as an unknown call", async () => {
    const { methods } = dispatcher();
    for (const requestId of ["", 7 as unknown as string]) {
      await assert.rejects(methods.respond(requestId, 200, {}), {
        name: "ValidationError",
        message: "a method answer needs the requestId of its call (msg.requestId)",
      });
    }
    await assert.rejects(
      methods.respond("9", 200, {}),
      (error) =>
        error instanceof MethodCallNotWaitingError &&
        error.name === "MethodCallNotWaitingError" &&
        error.message ===
          "no method call 9 is waiting for an answer: it was answered already, timed out, or the connection it came on is gone",
    );
  });

  it("an answer without a payload goes to the hub as null", async () => {
    const { methods } = dispatcher();
    methods.register(() => undefined);
    const { call, answers } = incoming("reboot", "1");
    methods.dispatch(call, {});
    await methods.respond("1", 200, undefined);
    assert.deepEqual(answers, [{ status: 200, payload: null }]);
  });

  it("a status is an integer from 100 to 999; a payload must become JSON", () => {
    for (const status of [100, 999]) validateMethodAnswer(status, undefined);
    for (const status of [99, 1000, 200.5]) {
      assert.throws(() => validateMethodAnswer(status, {}), ValidationError, String(status));
    }
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.throws(() => validateMethodAnswer(200, circular), {
      name: "ValidationError",
      message: /^a method answer's payload must be JSON-serialisable: /,
    });
  });

  it("a call superseded by another with the same requestId times out without touching the newer one", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { methods, warnings } = dispatcher();
      methods.register(() => undefined, { responseTimeoutMs: 100 });
      const older = incoming("reboot", "1");
      const newer = incoming("reboot", "1");
      methods.dispatch(older.call, {});
      mock.timers.tick(50);
      methods.dispatch(newer.call, {});
      mock.timers.tick(60); // the older call's time is up
      assert.equal(methods.waitingCount, 1, "the newer call still waits");
      assert.deepEqual(older.answers, []);
      void methods.respond("1", 200, {}); // the newer call is answered...
      mock.timers.tick(200); // ...and the older timer, long gone, changes nothing
      assert.deepEqual(newer.answers, [{ status: 200, payload: {} }]);
      assert.deepEqual(older.answers, []);
      assert.deepEqual(warnings, []);
    } finally {
      mock.timers.reset();
    }
  });

  it("a superseded call whose successor was answered already times out quietly", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { methods, warnings } = dispatcher();
      methods.register(() => undefined, { responseTimeoutMs: 100 });
      const older = incoming("reboot", "1");
      const newer = incoming("reboot", "1");
      methods.dispatch(older.call, {});
      mock.timers.tick(50);
      methods.dispatch(newer.call, {});
      void methods.respond("1", 200, {});
      mock.timers.tick(60); // the older call's time is up: nothing of that requestId waits any more
      assert.deepEqual(older.answers, []);
      assert.equal(methods.waitingCount, 0);
      assert.deepEqual(warnings, []);
    } finally {
      mock.timers.reset();
    }
  });

  it("a 504 for a handler that asked for no notice is no warning", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { methods, warnings } = dispatcher();
      methods.register(() => undefined, { responseTimeoutMs: 100 });
      const { call, answers } = incoming("reboot", "1");
      methods.dispatch(call, {});
      mock.timers.tick(100);
      assert.equal(answers[0]?.status, 504);
      await flush();
      assert.deepEqual(warnings, []);
    } finally {
      mock.timers.reset();
    }
  });

  it("a listener that throws, or a 404 that cannot be sent, is a warning", async () => {
    const { methods, warnings } = dispatcher(() => {
      throw new Error("listener broke");
    });
    methods.dispatch(incoming("reboot", "1", true).call, {});
    await flush();
    assert.deepEqual(warnings.map((warning) => warning.message).sort(), ["link gone", "listener broke"]);
  });
});
