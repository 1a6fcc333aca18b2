// The device session's edges against a fake DPS and hub (no SDK, no network), beside the main loop tests of
// device-session-logic.test.ts: calls after close() or before start(), twin requests that wait for a
// connection and give up, failures named with the operation and the device, and events nobody else reports.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errors } from "azure-iot-common";
import type { Message } from "azure-iot-device";
import {
  CloudMessageNotPendingError,
  ConfigurationError,
  DeviceSession,
  HubError,
  MemoryRegistrationStore,
  MethodCallNotWaitingError,
  OperationTimeoutError,
  SessionStoppedError,
  ValidationError,
  type CachedRegistration,
  type DeviceSessionOptions,
  type HubLink,
  type SessionDependencies,
  type SessionState,
  type SessionStateEvent,
  type TwinDocument,
} from "../../src/device/index.js";
import type { CloudMessage, IncomingCloudMessage } from "../../src/device/c2d-inbox.js";
import { toHubMessage } from "../../src/device/message-mapping.js";
import type { IncomingMethodCall } from "../../src/device/method-dispatcher.js";
import { messageBytes } from "../../src/device/outbox-record.js";

const WAIT_MS = 5_000;

class FakeLink extends EventEmitter implements HubLink {
  closed = false;
  twin: TwinDocument = { desired: { $version: 1 }, reported: { $version: 1 } };
  getTwinResult: () => Promise<TwinDocument> = () => Promise.resolve(structuredClone(this.twin));
  updateResult: () => Promise<void> = () => Promise.resolve();
  sendResult: (message: Message) => Promise<void> = () => Promise.resolve();
  enableMethodsResult: () => Promise<void> = () => Promise.resolve();
  sendEvent(message: Message): Promise<void> {
    return this.sendResult(message);
  }
  enableDesiredUpdates(): Promise<void> {
    return Promise.resolve();
  }
  getTwin(): Promise<TwinDocument> {
    return this.getTwinResult();
  }
  updateReported(): Promise<void> {
    return this.updateResult();
  }
  enableMethods(): Promise<void> {
    return this.enableMethodsResult();
  }
  receiveCloudMessages(): void {}
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

class FakeWorld implements SessionDependencies {
  links: FakeLink[] = [];
  provisions = 0;
  disposeResult: () => Promise<void> = () => Promise.resolve();
  provisionResult:
    (() => Promise<{ registrationId: string; assignedHub: string; deviceId: string }>) | undefined;
  connectResult: (() => Promise<HubLink>) | undefined;
  nextLink: () => FakeLink = () => new FakeLink();
  registrationId(): Promise<string> {
    return Promise.resolve("dev-1");
  }
  provision(): Promise<{ registrationId: string; assignedHub: string; deviceId: string }> {
    this.provisions += 1;
    return (
      this.provisionResult?.() ??
      Promise.resolve({ registrationId: "dev-1", assignedHub: "hub.example", deviceId: "dev-1" })
    );
  }
  connect(): Promise<HubLink> {
    if (this.connectResult) return this.connectResult();
    const link = this.nextLink();
    this.links.push(link);
    return Promise.resolve(link);
  }
  dispose(): Promise<void> {
    return this.disposeResult();
  }
  get current(): FakeLink {
    return this.links[this.links.length - 1];
  }
}

function makeSession(world: FakeWorld, options: DeviceSessionOptions = {}, idScope = "0ne00012345") {
  const session = new DeviceSession(
    {
      dps: { idScope, globalEndpoint: "dps.example" },
      attestation: {
        kind: "symmetricKey",
        registrationId: "dev-1",
        key: Buffer.from("k".repeat(32)).toString("base64"),
      },
      options: { backoff: { delayMs: () => 10 }, twinTimeoutMs: 300, telemetryAckTimeoutMs: 300, ...options },
    },
    world,
  );
  const states: SessionStateEvent[] = [];
  session.on("state", (event) => states.push(event));
  return { session, states };
}

function waitForState(session: DeviceSession, state: SessionState): Promise<SessionStateEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${state}`)), WAIT_MS);
    const onState = (event: SessionStateEvent) => {
      if (event.state !== state) return;
      clearTimeout(timer);
      session.off("state", onState);
      resolve(event);
    };
    session.on("state", onState);
  });
}

/** Rejects when `promise` has not settled within WAIT_MS: for calls that must not hang. */
function settles<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} never settled`)), WAIT_MS);
    }),
  ]);
}

const stopped = (operation: string) => (error: unknown) =>
  error instanceof SessionStoppedError &&
  error.message === `${operation} abandoned: the device session was stopped`;

describe("device session edges", () => {
  it("refuses start(), reprovision(), telemetry and twin requests after close(), each named", async () => {
    const { session } = makeSession(new FakeWorld());
    await session.close();
    assert.throws(() => session.start(), stopped("start"));
    assert.throws(() => session.reprovision(), stopped("reprovision"));
    await assert.rejects(session.sendTelemetry("late"), stopped("telemetry"));
    await assert.rejects(session.getTwin(), stopped("twin GET"));
    await assert.rejects(session.reportProperties({ a: 1 }), stopped("reported properties update"));
  });

  it("stop() of a session that is idle or closed, and a second close(), resolve at once", async () => {
    const { session } = makeSession(new FakeWorld());
    await settles(session.stop(), "stop() while idle");
    await session.close();
    await settles(session.stop(), "stop() while closed");
    await settles(session.close(), "a second close()");
    assert.equal(session.state, "closed");
  });

  it("close() with nothing waiting reports no unsent or kept telemetry; what waited is rejected as telemetry", async () => {
    const { session } = makeSession(new FakeWorld());
    const reports: string[] = [];
    session.on("unsent", (n) => reports.push(`unsent ${n}`));
    session.on("kept", (n) => reports.push(`kept ${n}`));
    session.start();
    await waitForState(session, "connected");
    await session.close();
    assert.deepEqual(reports, []);

    const { session: waiting } = makeSession(new FakeWorld());
    const pending = waiting.sendTelemetry("never started");
    await waiting.close();
    await assert.rejects(pending, stopped("telemetry"));
  });

  it("a twin request made before the connection waits for it, and leaves no listener behind", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    const listeners = session.listenerCount("state");
    const twin = session.getTwin();
    const version = session.reportProperties({ fan: "on" });
    session.start();
    assert.deepEqual((await twin).desired, { $version: 1 });
    assert.equal(await version, 2);
    assert.equal(session.listenerCount("state"), listeners);
    await session.close();
  });

  it("a twin request with no connection gives up at the twin timeout, naming the operation", async () => {
    const { session } = makeSession(new FakeWorld(), { twinTimeoutMs: 50 });
    await assert.rejects(
      session.getTwin(),
      (e: unknown) =>
        e instanceof OperationTimeoutError && e.message === "twin GET got no answer within 50 ms",
    );
    await assert.rejects(
      session.reportProperties({ a: 1 }),
      (e: unknown) =>
        e instanceof OperationTimeoutError &&
        e.message === "reported properties update got no answer within 50 ms",
    );
    await session.close();
  });

  it("a twin request waiting for a connection ends with the session: stop, or a configuration error", async () => {
    const world = new FakeWorld();
    world.provisionResult = () => new Promise(() => undefined);
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    session.start();
    const twin = session.getTwin();
    const stopping = session.stop();
    await assert.rejects(settles(twin, "getTwin"), stopped("twin GET"));
    await stopping;

    const failing = new FakeWorld();
    failing.provisionResult = () => Promise.reject(new ConfigurationError("no such scope"));
    const { session: broken } = makeSession(failing, { twinTimeoutMs: 2_000 });
    const report = broken.reportProperties({ a: 1 });
    broken.start();
    await assert.rejects(settles(report, "reportProperties"), stopped("reported properties update"));
    assert.equal(broken.state, "error");
    await broken.close();
  });

  it("a twin request in flight when the session stops is abandoned, not turned into a hub error", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    session.start();
    await waitForState(session, "connected");
    world.current.getTwinResult = () => new Promise(() => undefined);
    // Asked for right before stop(): the link is dropped before the request goes out.
    const twin = session.getTwin();
    await session.stop();
    await assert.rejects(settles(twin, "getTwin"), stopped("twin GET"));
    // One already sent when the session stops is abandoned with the connection.
    session.start();
    await waitForState(session, "connected");
    world.current.getTwinResult = () => new Promise(() => undefined);
    const sent = session.getTwin();
    await new Promise((resolve) => setImmediate(resolve));
    await session.stop();
    await assert.rejects(settles(sent, "getTwin"), stopped("hub connection"));
    await session.close();
  });

  it("a twin answer that takes a while within the timeout is taken", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    session.start();
    await waitForState(session, "connected");
    world.current.getTwinResult = () =>
      new Promise((resolve) => setTimeout(() => resolve(structuredClone(world.current.twin)), 30));
    assert.deepEqual((await session.getTwin()).reported, { $version: 1 });
    await session.close();
  });

  it("a twin request the hub refuses is a HubError naming the operation and the device, with the cause", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const refusal = new Error("412 precondition failed");
    world.current.getTwinResult = () => Promise.reject(refusal);
    await assert.rejects(
      session.getTwin(),
      (e: unknown) =>
        e instanceof HubError &&
        e.message.startsWith("twin GET failed: ") &&
        e.message.includes("412 precondition failed") &&
        e.deviceId === "dev-1" &&
        e.cause === refusal,
    );
    await session.close();
  });

  it("after a failed PATCH, a read-back without $version is refused by name", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    world.current.updateResult = () => Promise.reject(new Error("throttled"));
    await assert.rejects(session.reportProperties({ a: 1 }), HubError);
    world.current.updateResult = () => Promise.resolve();
    world.current.getTwinResult = () => Promise.resolve({ desired: { $version: 1 }, reported: {} });
    await assert.rejects(
      session.reportProperties({ a: 2 }),
      (e: unknown) =>
        e instanceof HubError &&
        e.message === "the hub returned reported properties without $version" &&
        e.deviceId === "dev-1",
    );
    await session.close();
  });

  it("a link that ends without an error is lost with a HubError that says so", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const disconnected = waitForState(session, "disconnected");
    world.current.emit("disconnect", undefined);
    const event = await disconnected;
    assert.match(event.error ?? "", /the hub connection ended/);
    await session.close();
  });

  it("a telemetry message the hub refuses for good names the device", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    world.current.sendResult = () =>
      Promise.reject(Object.assign(new Error("message too large"), { name: "MessageTooLargeError" }));
    await assert.rejects(
      session.sendTelemetry("big"),
      (e: unknown) => e instanceof HubError && e.deviceId === "dev-1",
    );
    await session.close();
  });

  it("reports an overflow drop with its reason", async () => {
    const { session } = makeSession(new FakeWorld(), { outboxMaxMessages: 1 });
    const drops: unknown[] = [];
    session.on("dropped", (event) => drops.push(event));
    const first = session.sendTelemetry("one");
    const second = session.sendTelemetry("two");
    await assert.rejects(first);
    assert.equal((drops[0] as { reason: string }).reason, "overflow");
    await session.close();
    await assert.rejects(second, stopped("telemetry"));
  });

  it("keeps the registration under the trimmed ID scope", async () => {
    const store = new MemoryRegistrationStore();
    const saved: CachedRegistration[] = [];
    const recording = {
      load: (id: string, scope: string) => store.load(id, scope),
      save: (r: CachedRegistration) => {
        saved.push(r);
        return store.save(r);
      },
      clear: (id: string, scope: string) => store.clear(id, scope),
    };
    const { session } = makeSession(new FakeWorld(), { registrationStore: recording }, "  0ne00012345 ");
    session.start();
    await waitForState(session, "connected");
    assert.equal(saved[0]?.idScope, "0ne00012345");
    await session.close();
  });

  it("warns when the registration cache cannot be written or cleared, and goes on", async () => {
    const warnings: string[] = [];
    const failingStore = {
      load: () => Promise.resolve(undefined),
      save: () => Promise.reject(new Error("disk full")),
      clear: () => Promise.reject(new Error("read-only")),
    };
    const { session } = makeSession(new FakeWorld(), { registrationStore: failingStore });
    session.on("warning", (error) => warnings.push(error.message));
    session.start();
    await waitForState(session, "connected");
    session.reprovision();
    await waitForState(session, "connected");
    assert.deepEqual(warnings.slice(0, 2), ["disk full", "read-only"]);
    await session.close();
  });

  it("answers 404 to a method call no handler takes, and warns when that answer cannot be sent", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const notImplemented: string[] = [];
    const warnings: Error[] = [];
    session.on("methodNotImplemented", (name) => notImplemented.push(name));
    session.on("warning", (error) => warnings.push(error));
    session.handleMethods(() => undefined, { names: ["known"] });
    session.start();
    await waitForState(session, "connected");
    const answered = new Promise<void>((resolve) => {
      const call: IncomingMethodCall = {
        requestId: "r-1",
        methodName: "unknown",
        payload: null,
        respond: (status) => {
          assert.equal(status, 404);
          resolve();
          return Promise.reject(new Error("link gone"));
        },
      };
      world.current.emit("method", call);
    });
    await answered;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(notImplemented, ["unknown"]);
    assert.ok(warnings.length >= 1, "the failed 404 is a warning");
    await session.close();
  });

  it("hands cloud messages of the link to the handler, warns for one that throws, and abandons one held too long", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { cloudMessageHoldMs: 30 });
    const warnings: Error[] = [];
    session.on("warning", (error) => warnings.push(error));
    session.start();
    await waitForState(session, "connected");
    const settled: string[] = [];
    const message = (id: string): IncomingCloudMessage => ({
      body: Buffer.from(id),
      messageId: id,
      properties: {},
      settle: (outcome) => {
        settled.push(`${id} ${outcome}`);
        return Promise.resolve();
      },
    });
    world.current.emit("cloudMessage", message("held"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(settled, ["held abandon"], "no handler within the hold time: abandoned");
    const received: string[] = [];
    session.receiveCloudMessages((m) => {
      received.push(m.messageId ?? "");
      if (m.messageId === "bad") throw new Error("handler bug");
    });
    world.current.emit("cloudMessage", message("good"));
    world.current.emit("cloudMessage", message("bad"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(received, ["good", "bad"]);
    assert.ok(warnings.some((w) => w.message.includes("handler bug")));
    await session.close();
  });

  it("a method subscription that gets no answer fails the connection, naming the step", async () => {
    const world = new FakeWorld();
    world.nextLink = () => {
      const link = new FakeLink();
      link.enableMethodsResult = () => new Promise(() => undefined);
      return link;
    };
    const { session } = makeSession(world, { twinTimeoutMs: 50 });
    session.handleMethods(() => undefined);
    session.start();
    const retrying = await waitForState(session, "retrying");
    assert.match(retrying.error ?? "", /direct methods subscribe got no answer within 50 ms/);
    await session.close();

    const later = new FakeWorld();
    const { session: connected } = makeSession(later, { twinTimeoutMs: 50 });
    connected.start();
    await waitForState(connected, "connected");
    later.current.enableMethodsResult = () => new Promise(() => undefined);
    const lost = waitForState(connected, "disconnected");
    connected.handleMethods(() => undefined);
    assert.match((await lost).error ?? "", /direct methods subscribe got no answer within 50 ms/);
    await connected.close();
  });

  it("a link that connects after stop() is closed at once and never used", async () => {
    const world = new FakeWorld();
    let open: (link: HubLink) => void = () => undefined;
    world.connectResult = () => new Promise((resolve) => (open = resolve));
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connecting");
    await session.stop();
    const late = new FakeLink();
    open(late);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(late.closed, true);
    assert.equal(late.listenerCount("disconnect"), 0, "never adopted");
    await session.close();
  });

  it("a throwing warning listener breaks nothing", async () => {
    const { session } = makeSession(new FakeWorld());
    session.on("warning", () => {
      throw new Error("warning listener bug");
    });
    session.on("twin", () => {
      throw new Error("twin listener bug");
    });
    session.start();
    await waitForState(session, "connected");
    await session.sendTelemetry("still works");
    await session.close();
  });
});

/** Resolves on the next turn of the event loop: lets the fakes' promises and the session's phases run. */
const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 20));

/** A promise the test settles itself, for a hub or store answer that must wait. */
function held<T>() {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function withDir(run: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "provisio-session-edges-"));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

describe("device session links, cancellation and counters", () => {
  it("a connected link the hub drops for a refused identity registers with DPS again at once", async () => {
    const world = new FakeWorld();
    const { session, states } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const before = states.length;
    const reconnected = waitForState(session, "connected");
    world.current.emit("disconnect", new errors.UnauthorizedError("device disabled"));
    await reconnected;
    assert.deepEqual(
      states.slice(before).map((s) => s.state),
      ["provisioning", "provisioned", "connecting", "connected"],
    );
    assert.match(states[before]?.error ?? "", /device disabled/);
    assert.equal(world.provisions, 2);
    await session.close();
  });

  it("a connection the hub refuses for good (a configuration problem) ends in error, not in a retry", async () => {
    const world = new FakeWorld();
    world.connectResult = () => Promise.reject(new ConfigurationError("no such hub"));
    const { session } = makeSession(world);
    session.start();
    const failed = await waitForState(session, "error");
    assert.match(failed.error ?? "", /no such hub/);
    await session.close();
  });

  for (const step of ["twin GET", "subscribe"] as const) {
    it(`a link that fails during its ${step} while connecting is retried with the link's error, at once`, async () => {
      const world = new FakeWorld();
      const asked = held<void>();
      const hang = (): Promise<never> => {
        asked.resolve();
        return new Promise(() => undefined);
      };
      world.nextLink = () => {
        const link = new FakeLink();
        if (step === "twin GET") link.getTwinResult = hang;
        else link.enableMethodsResult = hang;
        return link;
      };
      const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
      if (step === "subscribe") session.handleMethods(() => undefined);
      session.start();
      await asked.promise;
      const retrying = waitForState(session, "retrying");
      world.current.emit("disconnect", new errors.NotConnectedError(`socket closed during the ${step}`));
      assert.match((await retrying).error ?? "", new RegExp(`socket closed during the ${step}`));
      await session.close();
    });
  }

  it("a late disconnect from a link already replaced leaves the current connection alone", async () => {
    const world = new FakeWorld();
    const { session, states } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    const reconnected = waitForState(session, "connected");
    first.emit("disconnect", new errors.NotConnectedError("socket closed"));
    await reconnected;
    const before = states.length;
    first.emit("disconnect", new errors.NotConnectedError("the old client closes late"));
    await nextTurn();
    assert.deepEqual(states.slice(before), [], "no state change");
    assert.equal(world.links.length, 2);
    const sent: string[] = [];
    world.current.sendResult = (message) => {
      sent.push(String(message.messageId));
      return Promise.resolve();
    };
    await session.sendTelemetry("after", { messageId: "m-after" });
    assert.deepEqual(sent, ["m-after"], "telemetry still goes out on the current link");
    await session.close();
  });

  it("a twin request made while connecting waits for the connected link, not the one being set up", async () => {
    const world = new FakeWorld();
    const asked = held<void>();
    let first = true;
    world.nextLink = () => {
      const link = new FakeLink();
      if (first) {
        first = false;
        link.getTwinResult = () => {
          asked.resolve();
          return new Promise(() => undefined);
        };
      }
      link.twin = { desired: { $version: world.links.length + 1 }, reported: { $version: 1 } };
      return link;
    };
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    session.start();
    await asked.promise;
    assert.equal(session.state, "connecting");
    const twin = session.getTwin();
    world.current.emit("disconnect", new errors.NotConnectedError("socket closed"));
    assert.deepEqual((await settles(twin, "getTwin")).desired, { $version: 2 }, "from the second link");
    await session.close();
  });

  it("a twin request waiting before start() ends at once when the session is closed", async () => {
    const { session } = makeSession(new FakeWorld(), { twinTimeoutMs: 2_000 });
    const twin = session.getTwin();
    const report = session.reportProperties({ a: 1 });
    await session.close();
    await assert.rejects(twin, stopped("twin GET"));
    await assert.rejects(report, stopped("reported properties update"));
  });

  it("a twin request made before start() waits for a connection that takes a while", async () => {
    const world = new FakeWorld();
    world.provisionResult = () =>
      new Promise((resolve) =>
        setTimeout(
          () => resolve({ registrationId: "dev-1", assignedHub: "hub.example", deviceId: "dev-1" }),
          50,
        ),
      );
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    const twin = session.getTwin();
    session.start();
    assert.deepEqual((await twin).desired, { $version: 1 });
    await session.close();
  });

  it("a reported-properties PATCH answered a while later, within the timeout, is taken", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { twinTimeoutMs: 2_000 });
    session.start();
    await waitForState(session, "connected");
    world.current.updateResult = () => new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(await session.reportProperties({ a: 1 }), 2);
    await session.close();
  });

  it("a reported $version that is not a number is not counted on: the report reads it back", async () => {
    const world = new FakeWorld();
    world.nextLink = () => {
      const link = new FakeLink();
      link.twin = { desired: { $version: 1 }, reported: { $version: "7" } };
      return link;
    };
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    world.current.twin.reported = { $version: 8, a: 1 };
    assert.equal(await session.reportProperties({ a: 1 }), 8);
    await session.close();
  });

  it("calls and cloud messages of the link are forgotten when the session stops", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const tokens: string[] = [];
    session.handleMethods(() => undefined);
    session.receiveCloudMessages((message) => tokens.push(message.lockToken));
    session.start();
    await waitForState(session, "connected");
    const answers: number[] = [];
    const call: IncomingMethodCall = {
      requestId: "r-1",
      methodName: "reboot",
      payload: null,
      respond: (status) => {
        answers.push(status);
        return Promise.resolve();
      },
    };
    world.current.emit("method", call);
    world.current.emit("cloudMessage", {
      body: Buffer.from("c2d"),
      properties: {},
      settle: () => Promise.resolve(),
    } satisfies IncomingCloudMessage);
    assert.equal(tokens.length, 1);
    await session.stop();
    await assert.rejects(session.respondToMethod("r-1", 200, {}), MethodCallNotWaitingError);
    await assert.rejects(session.settleCloudMessage(tokens[0], "complete"), CloudMessageNotPendingError);
    assert.deepEqual(answers, [], "nothing answered on the stopped link");
    await session.close();
  });

  it("settles a cloud message by its lock token on the message's own connection", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const received: CloudMessage[] = [];
    session.receiveCloudMessages((message) => received.push(message));
    session.start();
    await waitForState(session, "connected");
    const outcomes: string[] = [];
    world.current.emit("cloudMessage", {
      body: Buffer.from("c2d"),
      properties: {},
      settle: (outcome) => {
        outcomes.push(outcome);
        return Promise.resolve();
      },
    } satisfies IncomingCloudMessage);
    await session.settleCloudMessage(received[0].lockToken, "complete");
    assert.deepEqual(outcomes, ["complete"]);
    await session.close();
  });

  it("stop() and close() leave no state listener behind", async () => {
    const { session } = makeSession(new FakeWorld());
    const listeners = session.listenerCount("state");
    session.start();
    await waitForState(session, "connected");
    await session.stop();
    assert.equal(session.listenerCount("state"), listeners);
    session.start();
    await waitForState(session, "connected");
    await session.close();
    assert.equal(session.listenerCount("state"), listeners);
  });

  it("a DPS registration that ends after stop() is neither cached nor used", async () => {
    const world = new FakeWorld();
    const answer = held<{ registrationId: string; assignedHub: string; deviceId: string }>();
    world.provisionResult = () => answer.promise;
    const saved: CachedRegistration[] = [];
    const store = new MemoryRegistrationStore();
    const recording = {
      load: (id: string, scope: string) => store.load(id, scope),
      save: (r: CachedRegistration) => {
        saved.push(r);
        return store.save(r);
      },
      clear: (id: string, scope: string) => store.clear(id, scope),
    };
    const { session } = makeSession(world, { registrationStore: recording });
    session.start();
    assert.equal(session.state, "provisioning");
    await session.stop();
    answer.resolve({ registrationId: "dev-1", assignedHub: "stale.example", deviceId: "dev-1" });
    await nextTurn();
    assert.deepEqual(saved, [], "not cached");
    world.provisionResult = undefined;
    session.start();
    const connected = await waitForState(session, "connected");
    assert.equal(connected.hub, "hub.example", "registered again, not the stale answer");
    assert.equal(world.provisions, 2);
    await session.close();
  });

  it("a stop() while reprovision() clears the cache registers nothing with DPS afterwards", async () => {
    const world = new FakeWorld();
    const store = new MemoryRegistrationStore();
    const clearing = held<void>();
    let holdClear = false;
    const recording = {
      load: (id: string, scope: string) => store.load(id, scope),
      save: (r: CachedRegistration) => store.save(r),
      clear: async (id: string, scope: string) => {
        if (holdClear) await clearing.promise;
        return store.clear(id, scope);
      },
    };
    const { session } = makeSession(world, { registrationStore: recording });
    session.start();
    await waitForState(session, "connected");
    holdClear = true;
    session.reprovision();
    await session.stop();
    clearing.resolve();
    await nextTurn();
    assert.equal(world.provisions, 1, "no DPS registration after stop()");
    await session.close();
  });

  it("a connect refused after stop() keeps the registration DPS just gave in the cache", async () => {
    const world = new FakeWorld();
    let refuse: (error: Error) => void = () => undefined;
    world.connectResult = () => new Promise<HubLink>((_, reject) => (refuse = reject));
    const store = new MemoryRegistrationStore();
    const cleared: string[] = [];
    const recording = {
      load: (id: string, scope: string) => store.load(id, scope),
      save: (r: CachedRegistration) => store.save(r),
      clear: (id: string, scope: string) => {
        cleared.push(id);
        return store.clear(id, scope);
      },
    };
    const { session } = makeSession(world, { registrationStore: recording });
    session.start();
    await waitForState(session, "connecting");
    const stopped = session.stop();
    refuse(new errors.UnauthorizedError("identity refused"));
    await stopped;
    await nextTurn();
    assert.deepEqual(cleared, [], "a stopped session changes nothing on disk");
    assert.equal((await store.load("dev-1", "0ne00012345"))?.assignedHub, "hub.example");
    await session.close();
  });

  it("a link that ends while a refused identity is forgotten does not throw into the hub client", async () => {
    const world = new FakeWorld();
    const store = new MemoryRegistrationStore();
    const clearing = held<void>();
    const cleared = held<void>();
    const recording = {
      load: (id: string, scope: string) => store.load(id, scope),
      save: (r: CachedRegistration) => store.save(r),
      clear: async (id: string, scope: string) => {
        cleared.resolve();
        await clearing.promise;
        return store.clear(id, scope);
      },
    };
    let refused: FakeLink | undefined;
    world.nextLink = () => {
      const link = new FakeLink();
      if (!refused) {
        refused = link;
        link.getTwinResult = () => Promise.reject(new errors.UnauthorizedError("identity refused"));
      }
      return link;
    };
    const { session } = makeSession(world, { registrationStore: recording });
    session.start();
    await cleared.promise;
    assert.doesNotThrow(() => refused?.emit("disconnect", undefined));
    clearing.resolve();
    await waitForState(session, "connected");
    assert.equal(world.provisions, 2, "registered again after the refusal");
    await session.close();
  });

  it("warns when the registration cache cannot be read, and registers with DPS instead", async () => {
    const world = new FakeWorld();
    const warnings: string[] = [];
    const unreadable = {
      load: () => Promise.reject(new Error("cache unreadable")),
      save: () => Promise.resolve(),
      clear: () => Promise.resolve(),
    };
    const { session } = makeSession(world, { registrationStore: unreadable });
    session.on("warning", (error) => warnings.push(error.message));
    session.start();
    await waitForState(session, "connected");
    assert.deepEqual(warnings, ["cache unreadable"]);
    assert.equal(world.provisions, 1);
    await session.close();
  });

  it("a phase that throws is reported as a warning and the session still stops", async () => {
    const world = new FakeWorld();
    world.disposeResult = () => {
      throw new Error("dispose bug");
    };
    const { session } = makeSession(world);
    const warnings: string[] = [];
    session.on("warning", (error) => warnings.push(error.message));
    session.start();
    await waitForState(session, "connected");
    await settles(session.stop(), "stop()");
    assert.equal(session.state, "idle");
    assert.deepEqual(warnings, ["dispose bug"]);
    await session.close();
  });

  it("refuses telemetry the hub would refuse before it reaches the outbox", async () => {
    const { session } = makeSession(new FakeWorld());
    await assert.rejects(
      session.sendTelemetry("x", { properties: { "": "v" } }),
      (e: unknown) => e instanceof ValidationError && /names must not be empty/.test(e.message),
    );
    assert.equal(session.outboxSize, 0);
    await session.close();
  });

  it("counts the outbox's messages and bytes, all in memory without a file", async () => {
    const { session } = makeSession(new FakeWorld());
    const sends = [
      session.sendTelemetry("one", { messageId: "m1" }),
      session.sendTelemetry("two!", { messageId: "m2" }),
    ];
    const bytes =
      messageBytes(toHubMessage("one", { messageId: "m1" })) +
      messageBytes(toHubMessage("two!", { messageId: "m2" }));
    assert.deepEqual(
      [session.outboxSize, session.outboxInMemory, session.outboxBytes, session.outboxCorruptRecords],
      [2, 2, bytes, 0],
    );
    await session.close();
    for (const send of sends) await assert.rejects(send, SessionStoppedError);
  });

  it(
    "counts the damaged records an outbox on disk skipped, and reports nothing kept when nothing waits",
    withDir(async (dir) => {
      const outboxFile = join(dir, "outbox.log");
      const world = new FakeWorld();
      world.connectResult = () => Promise.reject(new errors.NotConnectedError("hub away"));
      const first = makeSession(world, { outboxFile }).session;
      const kept: number[] = [];
      first.on("kept", (count) => kept.push(count));
      const waiting = first.sendTelemetry("d1", { messageId: "d1" });
      await first.close();
      await assert.rejects(waiting);
      assert.deepEqual(kept, [1]);
      for (const name of readdirSync(dir)) appendFileSync(join(dir, name), "garbage\n");

      const up = new FakeWorld();
      const second = makeSession(up, { outboxFile }).session;
      assert.deepEqual([second.outboxSize, second.outboxCorruptRecords], [1, 1]);
      second.on("kept", (count) => kept.push(count));
      second.start();
      await waitForState(second, "connected");
      await second.sendTelemetry("d2", { messageId: "d2" });
      await second.close();
      assert.deepEqual(kept, [1], "nothing waited at the second close()");
    }),
  );
});
