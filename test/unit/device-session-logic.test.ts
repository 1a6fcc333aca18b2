// The session's loop, outbox and twin logic against a fake DPS and hub (no SDK, no network): what it does
// on drops, refusals, timeouts and stop.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errors } from "azure-iot-common";
import type { Message } from "azure-iot-device";
import {
  DeviceSession,
  MemoryRegistrationStore,
  ConfigurationError,
  OperationTimeoutError,
  OutboxOverflowError,
  SessionStoppedError,
  TelemetryKeptError,
  type DeviceSessionConfig,
  type DeviceSessionOptions,
  type HubLink,
  type SessionDependencies,
  type SessionState,
  type SessionStateEvent,
  type TwinDocument,
} from "../../src/device/index.js";
import { lastOccurrences } from "../support/delivery-order.js";

const WAIT_MS = 5_000;

class FakeLink extends EventEmitter implements HubLink {
  sent: string[] = [];
  closed = false;
  twin: TwinDocument = { desired: { $version: 1 }, reported: { $version: 1 } };
  /** What sendEvent does; default: accept. */
  onSend: (message: Message) => Promise<void> = () => Promise.resolve();
  answerTwin = true;
  subscribeError: Error | undefined;

  sendEvent(message: Message): Promise<void> {
    return this.onSend(message).then(() => {
      this.sent.push(message.messageId);
    });
  }
  enableDesiredUpdates(): Promise<void> {
    return this.subscribeError ? Promise.reject(this.subscribeError) : Promise.resolve();
  }
  getTwin(): Promise<TwinDocument> {
    this.gets += 1;
    return this.answerTwin ? Promise.resolve(structuredClone(this.twin)) : new Promise(() => undefined);
  }
  patches: Array<Record<string, unknown>> = [];
  gets = 0;
  updateReported(patch: Record<string, unknown>): Promise<void> {
    if (!this.answerTwin) return new Promise(() => undefined);
    this.patches.push(patch);
    this.twin.reported = {
      ...this.twin.reported,
      ...patch,
      $version: (this.twin.reported.$version as number) + 1,
    };
    return Promise.resolve();
  }
  methodNames: string[][] = [];
  receiving = false;
  enableMethods(names: readonly string[]): Promise<void> {
    this.methodNames.push([...names]);
    return Promise.resolve();
  }
  receiveCloudMessages(): void {
    this.receiving = true;
  }
  close(): Promise<void> {
    this.closed = true;
    this.removeAllListeners();
    return Promise.resolve();
  }
  drop(error: Error = new errors.NotConnectedError("socket closed")): void {
    this.emit("disconnect", error);
  }
}

class FakeWorld implements SessionDependencies {
  provisions = 0;
  links: FakeLink[] = [];
  /** Errors the next provision/connect calls throw, in order. */
  provisionFailures: Error[] = [];
  connectFailures: Error[] = [];
  nextLink: () => FakeLink = () => new FakeLink();
  disposed = false;

  registrationIdFailures: Error[] = [];

  registrationId(): Promise<string> {
    const failure = this.registrationIdFailures.shift();
    return failure ? Promise.reject(failure) : Promise.resolve("dev-1");
  }
  provision(): Promise<{ registrationId: string; assignedHub: string; deviceId: string }> {
    this.provisions += 1;
    const failure = this.provisionFailures.shift();
    if (failure) return Promise.reject(failure);
    return Promise.resolve({
      registrationId: "dev-1",
      assignedHub: `hub-${this.provisions}.example`,
      deviceId: "dev-1",
    });
  }
  connect(): Promise<HubLink> {
    const failure = this.connectFailures.shift();
    if (failure) return Promise.reject(failure);
    const link = this.nextLink();
    this.links.push(link);
    return Promise.resolve(link);
  }
  dispose(): Promise<void> {
    this.disposed = true;
    return Promise.resolve();
  }
  get current(): FakeLink {
    return this.links[this.links.length - 1];
  }
}

const config: DeviceSessionConfig = {
  dps: { idScope: "0ne00012345", globalEndpoint: "dps.example" },
  attestation: {
    kind: "symmetricKey",
    registrationId: "dev-1",
    key: Buffer.from("k".repeat(32)).toString("base64"),
  },
};

function makeSession(
  world: FakeWorld,
  options: DeviceSessionOptions = {},
  attestation: DeviceSessionConfig["attestation"] = config.attestation,
) {
  const session = new DeviceSession(
    {
      ...config,
      attestation,
      options: { backoff: { delayMs: () => 10 }, twinTimeoutMs: 300, telemetryAckTimeoutMs: 300, ...options },
    },
    world,
  );
  const states: SessionStateEvent[] = [];
  session.on("state", (event) => states.push(event));
  return { session, states, names: () => states.map((s) => s.state) };
}

function waitForState(session: DeviceSession, state: SessionState, after = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${state}`)), WAIT_MS);
    const onState = (event: SessionStateEvent) => {
      if (event.state !== state || seen++ < after) return;
      clearTimeout(timer);
      session.off("state", onState);
      resolve();
    };
    session.on("state", onState);
  });
}

describe("device session logic", () => {
  it("queues telemetry before start and sends it in order once connected", async () => {
    const world = new FakeWorld();
    const { session, names } = makeSession(world);
    const sends = ["a", "b", "c"].map((id) => session.sendTelemetry(id, { messageId: id }));
    assert.equal(session.outboxSize, 3);
    session.start();
    await Promise.all(sends);
    assert.deepEqual(world.current.sent, ["a", "b", "c"]);
    assert.deepEqual(names(), ["provisioning", "provisioned", "connecting", "connected"]);
    await session.close();
  });

  it("state events carry registration id, device id and hub, and never the key", async () => {
    const world = new FakeWorld();
    const { session, states } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const connected = states.at(-1)!;
    assert.deepEqual(connected, {
      state: "connected",
      registrationId: "dev-1",
      deviceId: "dev-1",
      hub: "hub-1.example",
    });
    const key =
      config.attestation.kind === "symmetricKey" && "key" in config.attestation ? config.attestation.key : "";
    assert.ok(!JSON.stringify(states).includes(key));
    await session.close();
  });

  it("reconnects after a drop without provisioning again, fetches the twin again and drops stale patches", async () => {
    const world = new FakeWorld();
    const { session, names } = makeSession(world);
    const twins: Array<Record<string, unknown>> = [];
    const desired: Array<Record<string, unknown>> = [];
    session.on("twin", (doc) => twins.push(doc));
    session.on("desired", (patch) => desired.push(patch));
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    first.emit("desired", { $version: 2, fan: "on" });
    first.emit("desired", { $version: 2, fan: "on" });

    world.nextLink = () => {
      const link = new FakeLink();
      link.twin.desired = { $version: 5, fan: "off" };
      return link;
    };
    first.drop();
    await waitForState(session, "connected");
    assert.equal(world.provisions, 1);
    assert.ok(first.closed, "the old link was closed");
    assert.deepEqual(names().slice(4), ["disconnected", "retrying", "connecting", "connected"]);
    assert.deepEqual(
      twins.map((t) => t.$version),
      [1, 5],
    );
    world.current.emit("desired", { $version: 4, fan: "stale" });
    world.current.emit("desired", { $version: 6, fan: "auto" });
    first.emit("desired", { $version: 7, fan: "from-old-link" });
    assert.deepEqual(
      desired.map((p) => p.fan),
      ["on", "auto"],
    );
    await session.close();
  });

  it("message sent while the link fails is kept and sent after the reconnect, in order", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    let attemptsOnFirst = 0;
    first.onSend = () => {
      attemptsOnFirst += 1;
      return Promise.reject(new errors.NotConnectedError("link detached"));
    };
    const sends = ["m1", "m2"].map((id) => session.sendTelemetry(id, { messageId: id }));
    await waitForState(session, "connected");
    await Promise.all(sends);
    assert.deepEqual(first.sent, []);
    assert.equal(attemptsOnFirst, 2, "both went out at once, and nothing more after the failure");
    assert.deepEqual(world.current.sent, ["m1", "m2"]);
    await session.close();
  });

  it("a message the hub refuses for good is rejected and the next one still goes", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    world.current.onSend = (message) =>
      message.messageId === "big"
        ? Promise.reject(new errors.MessageTooLargeError("too big"))
        : Promise.resolve();
    await assert.rejects(session.sendTelemetry("x", { messageId: "big" }), /MessageTooLargeError/);
    await session.sendTelemetry("y", { messageId: "small" });
    assert.deepEqual(world.current.sent, ["small"]);
    assert.equal(world.links.length, 1);
    await session.close();
  });

  it("an ack that never comes reconnects and sends the message again with the same messageId", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryAckTimeoutMs: 50 });
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    const tried: string[] = [];
    first.onSend = (message) => {
      tried.push(message.messageId);
      return new Promise(() => undefined);
    };
    const reconnected = waitForState(session, "connected");
    await session.sendTelemetry("x", { messageId: "lost-ack" });
    await reconnected;
    assert.equal(world.links.length, 2);
    assert.deepEqual(tried, ["lost-ack"]);
    assert.deepEqual(world.current.sent, ["lost-ack"], "the same messageId on the new link");
    assert.ok(first.closed);
    await session.close();
  });

  it("the ack timeout counts from each message's own send, not from the first of the window", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryAckTimeoutMs: 200 });
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    const sentAt = new Map<string, number>();
    first.onSend = (message) => {
      sentAt.set(message.messageId, performance.now());
      // the first is acknowledged at once, every later one never
      return message.messageId === "early" ? Promise.resolve() : new Promise(() => undefined);
    };
    await session.sendTelemetry("x", { messageId: "early" });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const reconnected = waitForState(session, "connected").then(() => performance.now());
    const late = session.sendTelemetry("y", { messageId: "late" });
    const reconnectedAt = await reconnected;
    await late;
    assert.ok(
      reconnectedAt - (sentAt.get("late") ?? 0) >= 200,
      "not given up on before its own 200 ms had passed",
    );
    assert.deepEqual(world.current.sent, ["late"], "sent again, alone, on the new link");
    assert.ok(first.closed);
    await session.close();
  });

  it("throttled telemetry pauses, is sent again in order and none is lost", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const pauses: string[] = [];
    session.on("paused", (pause) => pauses.push(pause.reason));
    session.start();
    await waitForState(session, "connected");
    let throttles = 3;
    world.current.onSend = () =>
      throttles-- > 0 ? Promise.reject(new errors.ThrottlingError("slow down")) : Promise.resolve();
    const ids = ["t1", "t2", "t3", "t4"];
    await Promise.all(ids.map((id) => session.sendTelemetry(id, { messageId: id })));
    // All four went out at once: t4 was accepted while t1..t3 were throttled, so t4 went again after them.
    assert.deepEqual(lastOccurrences(world.current.sent), ids);
    assert.ok(world.current.sent.length - ids.length <= session.resentCount, "copies only of re-sent ones");
    assert.deepEqual(pauses, ["throttled"], "three refusals in one window make one pause");
    assert.equal(world.links.length, 1, "throttling is not a reason to reconnect");
    assert.equal(session.state, "connected");
    await session.close();
  });

  it("keeps up to `window` messages in flight before any acknowledgement, and no more", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryWindow: 3 });
    session.start();
    await waitForState(session, "connected");
    const acks: Array<() => void> = [];
    const tried: string[] = [];
    world.current.onSend = (message) => {
      tried.push(message.messageId);
      return new Promise<void>((resolve) => acks.push(resolve));
    };
    const ids = ["w1", "w2", "w3", "w4", "w5"];
    const sends = ids.map((id) => session.sendTelemetry(id, { messageId: id }));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(tried, ["w1", "w2", "w3"]);
    acks[0]();
    await sends[0];
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(tried, ["w1", "w2", "w3", "w4"], "one settled, one more goes");
    acks.slice(1).forEach((ack) => ack());
    await new Promise((resolve) => setImmediate(resolve));
    acks.slice(4).forEach((ack) => ack());
    await Promise.all(sends);
    assert.deepEqual(world.current.sent, ids);
    assert.equal(session.resentCount, 0);
    await session.close();
  });

  it("an acknowledgement that overtakes an earlier one is held: promises settle in call order", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryWindow: 4 });
    session.start();
    await waitForState(session, "connected");
    const acks = new Map<string, () => void>();
    world.current.onSend = (message) => new Promise<void>((resolve) => acks.set(message.messageId, resolve));
    const settled: string[] = [];
    const sends = ["a1", "a2", "a3"].map((id) =>
      session.sendTelemetry(id, { messageId: id }).then(() => settled.push(id)),
    );
    await new Promise((resolve) => setImmediate(resolve));
    acks.get("a3")?.();
    acks.get("a2")?.();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(settled, [], "a2 and a3 wait for a1");
    assert.equal(session.outboxSize, 3);
    acks.get("a1")?.();
    await Promise.all(sends);
    assert.deepEqual(settled, ["a1", "a2", "a3"]);
    await session.close();
  });

  it("message k throttled after k+1 was accepted: k+1 goes again after k, so the last copies keep the order", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryWindow: 8 });
    session.start();
    await waitForState(session, "connected");
    let refuseFirst: ((error: Error) => void) | undefined;
    world.current.onSend = (message) => {
      if (message.messageId === "k" && !refuseFirst) {
        return new Promise<void>((_resolve, reject) => (refuseFirst = reject));
      }
      return Promise.resolve();
    };
    const settled: string[] = [];
    const sends = ["k", "k+1", "k+2"].map((id) =>
      session.sendTelemetry(id, { messageId: id }).then(() => settled.push(id)),
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(world.current.sent, ["k+1", "k+2"], "the hub took k+1 and k+2 first");
    assert.deepEqual(settled, []);
    refuseFirst?.(new errors.ThrottlingError("slow down"));
    await Promise.all(sends);
    assert.deepEqual(world.current.sent, ["k+1", "k+2", "k", "k+1", "k+2"], "go back to k, same messageIds");
    assert.deepEqual(lastOccurrences(world.current.sent), ["k", "k+1", "k+2"]);
    assert.deepEqual(settled, ["k", "k+1", "k+2"]);
    assert.equal(session.resentCount, 3, "everything in flight at the refusal was sent again");
    assert.equal(world.links.length, 1);
    await session.close();
  });

  it("a message the hub refuses for good in the middle of the window holds no one up", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryWindow: 8 });
    session.start();
    await waitForState(session, "connected");
    world.current.onSend = (message) =>
      message.messageId === "bad"
        ? Promise.reject(new errors.MessageTooLargeError("too big"))
        : Promise.resolve();
    const outcomes = await Promise.allSettled(
      ["ok1", "bad", "ok2"].map((id) => session.sendTelemetry(id, { messageId: id })),
    );
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    assert.deepEqual(world.current.sent, ["ok1", "ok2"]);
    assert.equal(session.resentCount, 0);
    await session.close();
  });

  it("a used-up daily quota keeps the messages and says so until the hub takes them again", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const pauses: string[] = [];
    let resumed = 0;
    session.on("paused", (pause) => pauses.push(`${pause.reason}/${pause.retryInMs}`));
    session.on("resumed", () => (resumed += 1));
    session.start();
    await waitForState(session, "connected");
    let refusals = 2;
    world.current.onSend = () =>
      refusals-- > 0 ? Promise.reject(new errors.IotHubQuotaExceededError("quota")) : Promise.resolve();
    await session.sendTelemetry("q", { messageId: "q1" });
    assert.deepEqual(world.current.sent, ["q1"]);
    assert.deepEqual(pauses, ["quota-exceeded/10", "quota-exceeded/10"]);
    assert.equal(resumed, 2);
    await session.close();
  });

  it("a full outbox drops the oldest (reported) or refuses the newest, per policy", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { outboxMaxMessages: 2, outboxOverflow: "drop-oldest" });
    const dropped: string[] = [];
    session.on("dropped", (event) => dropped.push(`${event.messageId}/${event.droppedTotal}`));
    const first = session.sendTelemetry("1", { messageId: "one" });
    const later = [
      session.sendTelemetry("2", { messageId: "two" }),
      session.sendTelemetry("3", { messageId: "three" }),
    ].map((send) => send.catch((error: unknown) => error));
    await assert.rejects(first, OutboxOverflowError);
    assert.deepEqual(dropped, ["one/1"]);
    assert.equal(session.droppedCount, 1);
    await session.close();
    for (const outcome of await Promise.all(later)) assert.ok(outcome instanceof SessionStoppedError);

    const strict = makeSession(new FakeWorld(), {
      outboxMaxMessages: 1,
      outboxOverflow: "reject-new",
    }).session;
    const kept = strict.sendTelemetry("1");
    await assert.rejects(strict.sendTelemetry("2"), /outbox is full \(1 messages or 16777216 bytes\)/);
    await strict.close();
    await assert.rejects(kept, SessionStoppedError);
  });

  it("re-registers when the hub refuses a cached identity", async () => {
    const world = new FakeWorld();
    const registrationStore = new MemoryRegistrationStore();
    await registrationStore.save({
      registrationId: "dev-1",
      idScope: "0ne00012345",
      assignedHub: "old.example",
      deviceId: "dev-1",
    });
    world.connectFailures.push(new errors.UnauthorizedError("device not found"));
    const { session, names, states } = makeSession(world, { registrationStore });
    session.start();
    await waitForState(session, "connected");
    assert.deepEqual(names(), [
      "provisioning",
      "provisioned",
      "connecting",
      "provisioning",
      "provisioned",
      "connecting",
      "connected",
    ]);
    assert.equal(states.at(-1)?.hub, "hub-1.example");
    assert.equal((await registrationStore.load("dev-1", "0ne00012345"))?.assignedHub, "hub-1.example");
    await session.close();
  });

  it("a hub that refuses an identity DPS has just assigned, twice, is retried with backoff, never given up", async () => {
    const world = new FakeWorld();
    world.connectFailures.push(
      new errors.UnauthorizedError("token refused"),
      new errors.UnauthorizedError("token refused again"),
    );
    const { session, names, states } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    assert.deepEqual(names(), [
      "provisioning",
      "provisioned",
      "connecting",
      "retrying",
      "provisioning",
      "provisioned",
      "connecting",
      "retrying",
      "provisioning",
      "provisioned",
      "connecting",
      "connected",
    ]);
    assert.match(states[3]?.error ?? "", /UnauthorizedError/);
    assert.equal(world.provisions, 3, "registers again after each refusal, after the delay");
    await session.close();
  });

  it("retries DPS with growing attempt numbers, refusals included; stops only on a configuration problem", async () => {
    const world = new FakeWorld();
    world.provisionFailures.push(
      new errors.ServiceUnavailableError("busy"),
      new errors.ThrottlingError("slow"),
      new errors.UnauthorizedError("enrollment disabled"),
      new ConfigurationError("the DPS payload is not valid JSON"),
    );
    const { session, states } = makeSession(world);
    session.start();
    await waitForState(session, "error");
    const retries = states.filter((s) => s.state === "retrying");
    assert.deepEqual(
      retries.map((s) => [s.attempt, s.nextRetryMs]),
      [
        [1, 10],
        [2, 10],
        [3, 10],
      ],
    );
    assert.match(retries[2]?.error ?? "", /enrollment disabled/);
    assert.match(states.at(-1)?.error ?? "", /ConfigurationError/);
    assert.equal(world.provisions, 4);
    session.start();
    await waitForState(session, "connected");
    await session.close();
  });

  it("method and C2D handlers are applied to every new link; calls of a dropped link are forgotten", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const calls: string[] = [];
    session.handleMethods((call) => calls.push(call.requestId), { names: ["restart"] });
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    assert.deepEqual(first.methodNames, [["restart"]]);
    assert.equal(first.receiving, false, "no C2D handler yet: the link does not receive");
    // Registered while connected: the running link learns it at once.
    session.receiveCloudMessages(() => undefined);
    session.handleMethods(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(first.receiving, true);
    const answers: number[] = [];
    first.emit("method", {
      requestId: "r1",
      methodName: "restart",
      payload: undefined,
      respond: (status: number) => {
        answers.push(status);
        return Promise.resolve();
      },
    });
    assert.deepEqual(calls, ["r1"]);

    const reconnected = waitForState(session, "connected");
    first.drop();
    await reconnected;
    const second = world.current;
    assert.notEqual(second, first);
    assert.deepEqual(second.methodNames, [["restart"]]);
    assert.equal(second.receiving, true);
    await assert.rejects(session.respondToMethod("r1", 200, {}), /is waiting for an answer/);
    assert.deepEqual(answers, []);
    await session.close();
  });

  it("reprovision() registers again while connected", async () => {
    const world = new FakeWorld();
    const { session, names } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    session.reprovision();
    await waitForState(session, "connected");
    assert.equal(world.provisions, 2);
    assert.deepEqual(names().slice(4), ["provisioning", "provisioned", "connecting", "connected"]);
    assert.equal(session.status.hub, "hub-2.example");
    await session.close();
  });

  it("reportProperties resolves with each patch's reported version", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    const [a, b] = await Promise.all([
      session.reportProperties({ x: 1 }),
      session.reportProperties({ x: 2 }),
    ]);
    assert.deepEqual([a, b], [2, 3]);
    await assert.rejects(session.reportProperties({ "bad.key": 1 }), /must not contain/);
    await session.close();
  });

  it("reports take one round trip each: the version is counted, concurrent ones share one PATCH", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const link = world.current;
    const getsAtConnect = link.gets;
    assert.equal(await session.reportProperties({ s: 1 }), 2);
    assert.equal(await session.reportProperties({ s: 2 }), 3);
    const versions = await Promise.all(
      Array.from({ length: 10 }, (_, i) => session.reportProperties({ [`k${i}`]: i })),
    );
    const batches = new Set(versions).size;
    assert.ok(batches <= 2, `ten concurrent reports in ${batches} PATCHes`);
    assert.deepEqual(
      versions,
      [...versions].sort((a, b) => a - b),
      "versions in call order",
    );
    assert.equal(versions[9], 3 + batches);
    assert.equal(link.patches.length, 2 + batches);
    assert.equal(link.gets, getsAtConnect, "no twin GET after a PATCH");
    assert.equal(link.twin.reported.$version, versions[9]);
    assert.equal(link.twin.reported.k9, 9);
    await session.close();
  });

  it("after a PATCH that failed, the next report reads its version back", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const link = world.current;
    const update = link.updateReported.bind(link);
    link.updateReported = () => Promise.reject(new errors.ArgumentError("refused"));
    await assert.rejects(session.reportProperties({ a: 1 }));
    link.twin.reported.$version = 7; // moved on without us knowing: the count is no longer trusted
    link.updateReported = update;
    const gets = link.gets;
    assert.equal(await session.reportProperties({ a: 2 }), 8);
    assert.equal(link.gets, gets + 1);
    assert.equal(await session.reportProperties({ a: 3 }), 9);
    assert.equal(link.gets, gets + 1, "counted again from there");
    await session.close();
  });

  it("a twin request the hub never answers times out and forces a reconnect", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { twinTimeoutMs: 100 });
    session.start();
    await waitForState(session, "connected");
    world.current.answerTwin = false;
    world.nextLink = () => new FakeLink();
    const reconnected = waitForState(session, "connected");
    await assert.rejects(session.getTwin(), OperationTimeoutError);
    await reconnected;
    assert.equal(world.links.length, 2);
    await session.close();
  });

  it("stop() closes the link and the TPM side and keeps waiting telemetry for the next start()", async () => {
    const world = new FakeWorld();
    const { session, names } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    world.current.onSend = () => new Promise(() => undefined);
    const pending = session.sendTelemetry("never-acked", { messageId: "in-flight" });
    const queued = session.sendTelemetry("queued", { messageId: "queued" });
    await session.stop();
    assert.equal(session.state, "idle");
    assert.ok(world.links[0].closed);
    assert.ok(world.disposed);
    assert.equal(session.outboxSize, 2, "nothing is lost on stop");
    assert.deepEqual(names().slice(-2), ["stopping", "idle"]);

    session.start();
    await Promise.all([pending, queued]);
    assert.deepEqual(world.current.sent, ["in-flight", "queued"]);
    assert.equal(world.provisions, 1, "the cached registration is reused after a restart");
    await session.close();
    assert.throws(() => session.start(), SessionStoppedError);
    await assert.rejects(session.sendTelemetry("late"), SessionStoppedError);
  });

  it("stop() then start() without awaiting ends connected, and telemetry goes through", async () => {
    const world = new FakeWorld();
    const { session, names } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    const stopped = session.stop();
    session.start();
    await stopped;
    await session.sendTelemetry("after", { messageId: "after" });
    assert.equal(session.state, "connected");
    assert.deepEqual(names().slice(4), [
      "stopping",
      "idle",
      "provisioning",
      "provisioned",
      "connecting",
      "connected",
    ]);
    assert.deepEqual(world.current.sent, ["after"]);
    await session.close();
  });

  it("a state listener that calls stop() or start() at once does not interleave transitions", async () => {
    const world = new FakeWorld();
    const { session, names } = makeSession(world);
    let stopped: Promise<void> | undefined;
    session.on("state", (event) => {
      if (event.state === "connected" && !stopped) stopped = session.stop();
    });
    session.start();
    await waitForState(session, "idle");
    await stopped;
    assert.deepEqual(names(), ["provisioning", "provisioned", "connecting", "connected", "stopping", "idle"]);
    assert.ok(world.links[0].closed, "the link of the phase that never ran is closed");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(session.state, "idle", "no phase of an earlier state ran after the stop");
    await session.close();
  });

  it("an outbox on disk hands what waited at close() to the next session over the same file, first and in order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "provisio-session-outbox-"));
    try {
      const outboxFile = join(dir, "outbox.log");
      const down = new FakeWorld();
      down.connectFailures = Array.from({ length: 100 }, () => new errors.NotConnectedError("hub away"));
      const first = makeSession(down, { outboxFile }).session;
      first.start();
      const waiting = ["d1", "d2", "d3"].map((id) => first.sendTelemetry(id, { messageId: id }));
      const kept: number[] = [];
      first.on("kept", (count) => kept.push(count));
      await first.close();
      for (const send of waiting) await assert.rejects(send, TelemetryKeptError);
      assert.deepEqual(kept, [3], "the count of what stays on disk, not a loss");
      const up = new FakeWorld();
      const second = makeSession(up, { outboxFile }).session;
      assert.equal(second.outboxSize, 3, "recovered before start");
      second.start();
      await waitForState(second, "connected");
      await second.sendTelemetry("d4", { messageId: "d4" });
      assert.deepEqual(up.current.sent, ["d1", "d2", "d3", "d4"]);
      await second.close();
      const third = makeSession(new FakeWorld(), { outboxFile }).session;
      assert.equal(third.outboxSize, 0, "accepted messages are done on disk too");
      await third.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("close() rejects telemetry not yet accepted and reports how much", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const unsent: number[] = [];
    session.on("unsent", (count) => unsent.push(count));
    const waiting = [session.sendTelemetry("a"), session.sendTelemetry("b")];
    await session.close();
    for (const send of waiting) await assert.rejects(send, SessionStoppedError);
    assert.deepEqual(unsent, [2]);
    assert.equal(session.state, "closed");
  });

  it("a throwing listener does not break the loop; it is reported as a warning", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world);
    const warnings: Error[] = [];
    session.on("warning", (error) => warnings.push(error));
    session.on("twin", () => {
      throw new Error("listener bug");
    });
    session.start();
    await waitForState(session, "connected");
    await session.sendTelemetry("still works");
    assert.equal(warnings[0]?.message, "listener bug");
    await session.close();
  });
  it("a TPM that cannot be read yet is a provisioning failure that is retried", async () => {
    const world = new FakeWorld();
    world.registrationIdFailures.push(Object.assign(new Error("swtpm gone"), { code: "ECONNREFUSED" }));
    const { session, names } = makeSession(
      world,
      {},
      { kind: "tpm", connection: { kind: "swtpm", host: "127.0.0.1", port: 2321, ctrlPort: 2322 } },
    );
    session.start();
    await waitForState(session, "connected");
    assert.deepEqual(names(), [
      "provisioning",
      "retrying",
      "provisioning",
      "provisioned",
      "connecting",
      "connected",
    ]);
    await session.close();
  });

  it("a send still pending on a dropped link does not hold up the new link", async () => {
    const world = new FakeWorld();
    const { session } = makeSession(world, { telemetryAckTimeoutMs: 2_000 });
    session.start();
    await waitForState(session, "connected");
    const first = world.current;
    first.onSend = () => new Promise(() => undefined);
    const stuck = session.sendTelemetry("stuck", { messageId: "stuck" });
    await new Promise((resolve) => setImmediate(resolve));
    first.drop();
    await waitForState(session, "connected");
    await session.sendTelemetry("next", { messageId: "next" });
    await stuck;
    assert.deepEqual(world.current.sent, ["stuck", "next"], "the unacknowledged one goes first, again");
    await session.close();
  });

  it("reprovision() while connecting registers again instead of keeping the old identity", async () => {
    const world = new FakeWorld();
    let release: (() => void) | undefined;
    const slowConnect = world.connect.bind(world);
    let calls = 0;
    world.connect = () => {
      calls += 1;
      if (calls > 1) return slowConnect();
      return new Promise<HubLink>((resolve) => {
        release = () => void slowConnect().then(resolve);
      });
    };
    const { session } = makeSession(world);
    session.start();
    await waitForState(session, "connecting");
    session.reprovision();
    release?.();
    await waitForState(session, "connected");
    assert.equal(world.provisions, 2);
    assert.equal(session.status.hub, "hub-2.example");
    assert.ok(world.links[0].closed);
    await session.close();
  });
  it("a twin subscription that fails right after connecting is retried from connecting", async () => {
    const world = new FakeWorld();
    let made = 0;
    world.nextLink = () => {
      const link = new FakeLink();
      if (made++ === 0) link.subscribeError = new errors.ServiceUnavailableError("twin link refused");
      return link;
    };
    const { session, names, states } = makeSession(world);
    session.start();
    await waitForState(session, "connected");
    assert.deepEqual(names(), [
      "provisioning",
      "provisioned",
      "connecting",
      "retrying",
      "connecting",
      "connected",
    ]);
    assert.match(states[3]?.error ?? "", /ServiceUnavailableError/);
    assert.ok(world.links[0].closed);
    await session.close();
  });
});

describe("device session without DPS (a configured hub identity)", () => {
  const key = Buffer.from("d".repeat(32)).toString("base64");
  const directConfig: DeviceSessionConfig = {
    hub: { direct: { hostName: "plant-hub.example", deviceId: "press-1" } },
    attestation: { kind: "symmetricKey", registrationId: "press-1", key },
  };

  /** A store that counts every use: a direct identity must never be cached, loaded or cleared. */
  class CountingStore extends MemoryRegistrationStore {
    uses = 0;
    override load(...args: Parameters<MemoryRegistrationStore["load"]>) {
      this.uses += 1;
      return super.load(...args);
    }
    override save(...args: Parameters<MemoryRegistrationStore["save"]>) {
      this.uses += 1;
      return super.save(...args);
    }
    override clear(...args: Parameters<MemoryRegistrationStore["clear"]>) {
      this.uses += 1;
      return super.clear(...args);
    }
  }

  function directSession(world: FakeWorld, registrationStore = new CountingStore()) {
    const session = new DeviceSession(
      { ...directConfig, options: { backoff: { delayMs: () => 10 }, twinTimeoutMs: 300, registrationStore } },
      world,
    );
    const states: SessionStateEvent[] = [];
    session.on("state", (event) => states.push(event));
    return { session, states, registrationStore, names: () => states.map((s) => s.state) };
  }

  it("a hub refusal is retried with the same identity after the delay, never registered again or cached", async () => {
    const world = new FakeWorld();
    world.connectFailures.push(
      new errors.UnauthorizedError("device disabled"),
      new errors.UnauthorizedError("device disabled"),
    );
    const { session, names, states, registrationStore } = directSession(world);
    session.start();
    await waitForState(session, "connected");
    assert.deepEqual(names(), [
      "provisioning",
      "provisioned",
      "connecting",
      "retrying",
      "connecting",
      "retrying",
      "connecting",
      "connected",
    ]);
    assert.equal(world.provisions, 1, "the configured identity is taken once");
    assert.deepEqual(
      states.filter((s) => s.state === "retrying").map((s) => s.attempt),
      [1, 2],
    );
    assert.equal(registrationStore.uses, 0);
    // A refusal while connected is a lost link, retried, not a new registration.
    world.current.drop(new errors.UnauthorizedError("token revoked"));
    await waitForState(session, "connected");
    assert.equal(world.provisions, 1);
    assert.ok(!names().slice(8).includes("provisioning"), names().join(" -> "));
    assert.equal(registrationStore.uses, 0);
    await session.close();
  });

  it("takes no DPS settings and refuses a TPM, a group key, DPS besides it and an empty device id", () => {
    const world = new FakeWorld();
    const refuses = (config: DeviceSessionConfig, pattern: RegExp): void =>
      assert.throws(
        () => new DeviceSession(config, world),
        (error: Error) => error instanceof ConfigurationError && pattern.test(error.message),
      );
    refuses(
      { ...directConfig, attestation: { kind: "tpm", connection: { kind: "device" } } },
      /TPM device gets its hub key from DPS/,
    );
    refuses(
      { ...directConfig, attestation: { kind: "symmetricKey", registrationId: "press-1", groupKey: key } },
      /not an enrollment group key/,
    );
    refuses({ ...directConfig, dps: { idScope: "0ne00012345" } }, /either dps or hub.direct/);
    refuses(
      { ...directConfig, hub: { direct: { hostName: "plant-hub.example", deviceId: "" } } },
      /device id/,
    );
    refuses({ ...directConfig, hub: { direct: { hostName: "", deviceId: "press-1" } } }, /host name/);
    assert.doesNotThrow(() => new DeviceSession(directConfig, world));
  });
});
