// Direct methods and cloud-to-device messages through DeviceSession against the local emulator (real TLS,
// the unmodified SDK), over each hub transport the session offers: calls answered by a handler, a catch-all,
// 404 at once for a name nobody handles, 504 from the device when nobody answers, handlers kept across a
// reconnect; C2D completed, abandoned, rejected, and held or abandoned (never completed) without a handler.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  DeviceSession,
  type CloudMessage,
  type DeviceSessionOptions,
  type MethodCall,
} from "../../src/device/index.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import type { C2dFeedbackEvent } from "../../src/emulator/hub/types.js";

const WAIT_MS = 20_000;
/**
 * The hub transports with AMQP's settlement (complete, abandon, reject) run every test below; MQTT, which has
 * none, is covered through the nodes in test/nodes/commands-emulator.test.ts.
 */
const HUB_TRANSPORTS = ["amqp", "amqp-ws"] as const;

/** This file's own address: in Azure's layout the hub's ports are fixed (5671, 443). */
const HUB_HOST = "127.0.0.152";

function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A queue of values pushed by a callback, taken one at a time with a bound. */
class Inbox<T> {
  private readonly values: T[] = [];
  private readonly waiters: Array<(value: T) => void> = [];
  push = (value: T): void => {
    const waiter = this.waiters.shift();
    if (waiter) waiter(value);
    else this.values.push(value);
  };
  next(what: string): Promise<T> {
    const value = this.values.shift();
    if (value !== undefined) return Promise.resolve(value);
    return within(new Promise<T>((resolve) => this.waiters.push(resolve)), what);
  }
}

for (const hubTransport of HUB_TRANSPORTS) {
  describe(`direct methods and C2D through the device session (${hubTransport})`, () => {
    let dir: string;
    let emulator: Emulator;
    const sessions: DeviceSession[] = [];
    let counter = 0;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "provisio-commands-"));
      emulator = await startEmulator({
        dataDir: join(dir, "emulator"),
        hubHost: HUB_HOST,
        hubHttpsPort: 443,
      });
    });

    after(async () => {
      for (const session of sessions) await session.close();
      await emulator?.close();
      await rm(dir, { recursive: true, force: true });
    });

    async function connectedSession(
      options: DeviceSessionOptions = {},
      beforeStart: (session: DeviceSession) => void = () => undefined,
    ): Promise<{ session: DeviceSession; deviceId: string }> {
      counter += 1;
      const registrationId = `commands-${hubTransport}-${counter}`;
      const key = Buffer.from(`key-of-${registrationId}-0123456789abcdef`).toString("base64");
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
      });
      const session = new DeviceSession({
        dps: {
          globalEndpoint: emulator.endpoints.dps.amqp,
          idScope: emulator.idScope,
          transport: "amqp",
          ca: emulator.caPem,
        },
        attestation: { kind: "symmetricKey", registrationId, key },
        hub: { transport: hubTransport },
        options: {
          backoff: { delayMs: () => 200 },
          twinTimeoutMs: 10_000,
          ...options,
        },
      });
      sessions.push(session);
      if (process.env.DEBUG_COMMANDS) session.on("state", (e) => console.log(e.state, e.error ?? ""));
      beforeStart(session);
      const connected = within(
        new Promise<void>((resolve) =>
          session.on("state", (event) => event.state === "connected" && resolve()),
        ),
        "connected",
      );
      session.start();
      await connected;
      return { session, deviceId: registrationId };
    }

    const hub = (): string => emulator.endpoints.hub.hostName;

    function feedbackFor(deviceId: string): Inbox<C2dFeedbackEvent["outcome"]> {
      const outcomes = new Inbox<C2dFeedbackEvent["outcome"]>();
      emulator.hub.service.on("c2dFeedback", (event: C2dFeedbackEvent) => {
        if (event.deviceId === deviceId) outcomes.push(event.outcome);
      });
      return outcomes;
    }

    it("a call is answered by its handler, with the flow's status and payload", async () => {
      const calls = new Inbox<MethodCall>();
      const { session, deviceId } = await connectedSession({}, (s) =>
        s.handleMethods(calls.push, { names: ["setRecipe"] }),
      );
      const result = emulator.hub.service.invokeMethod(hub(), deviceId, {
        methodName: "setRecipe",
        payload: { recipe: "PET-500" },
        responseTimeoutInSeconds: 10,
      });
      const call = await calls.next("method call");
      assert.equal(call.methodName, "setRecipe");
      assert.deepEqual(call.payload, { recipe: "PET-500" });
      await session.respondToMethod(call.requestId, 201, { accepted: "PET-500" });
      assert.deepEqual(await within(result, "method result"), {
        status: 201,
        payload: { accepted: "PET-500" },
      });
    });

    it("a handler for all methods takes names no named handler takes; a name nobody handles gets 404", async () => {
      const named = new Inbox<MethodCall>();
      const { session, deviceId } = await connectedSession({}, (s) =>
        s.handleMethods(named.push, { names: ["a"] }),
      );
      const unknown = await within(
        emulator.hub.service.invokeMethod(hub(), deviceId, {
          methodName: "reboot",
          responseTimeoutInSeconds: 60,
        }),
        "404 for an unknown method",
      );
      assert.equal(unknown.status, 404);
      assert.match(JSON.stringify(unknown.payload), /reboot.{0,4} is not implemented/);

      // Registered while connected: the running connection learns it.
      const all = new Inbox<MethodCall>();
      session.handleMethods(all.push);
      const result = emulator.hub.service.invokeMethod(hub(), deviceId, {
        methodName: "reboot",
        payload: 5,
        responseTimeoutInSeconds: 10,
      });
      const call = await all.next("catch-all call");
      assert.equal(call.methodName, "reboot");
      assert.equal(call.payload, 5);
      await session.respondToMethod(call.requestId, 200, "rebooting");
      assert.deepEqual(await within(result, "catch-all result"), { status: 200, payload: "rebooting" });
    });

    it("a call nobody answers is answered 504 by the device when its response timeout passes", async () => {
      const calls = new Inbox<MethodCall>();
      const { session, deviceId } = await connectedSession({}, (s) =>
        s.handleMethods(calls.push, { responseTimeoutMs: 500 }),
      );
      const result = emulator.hub.service.invokeMethod(hub(), deviceId, {
        methodName: "slow",
        responseTimeoutInSeconds: 15,
      });
      const call = await calls.next("call");
      const answer = await within(result, "the device's 504");
      assert.equal(answer.status, 504);
      assert.match(JSON.stringify(answer.payload), /no answer from the device's flow within 500 ms/);
      await assert.rejects(session.respondToMethod(call.requestId, 200, {}), /is waiting for an answer/);
    });

    it("handlers are kept across a dropped connection", async () => {
      const calls = new Inbox<MethodCall>();
      const messages = new Inbox<CloudMessage>();
      const { session, deviceId } = await connectedSession({}, (s) => {
        s.handleMethods(calls.push, { names: ["ping"] });
        s.receiveCloudMessages(messages.push);
      });
      const reconnected = within(
        new Promise<void>((resolve) => {
          let dropped = false;
          session.on("state", (event) => {
            if (event.state === "disconnected") dropped = true;
            if (dropped && event.state === "connected") resolve();
          });
        }),
        "reconnect",
      );
      assert.equal(emulator.hub.faults.dropConnection(hub(), deviceId), true);
      await reconnected;
      const result = emulator.hub.service.invokeMethod(hub(), deviceId, {
        methodName: "ping",
        responseTimeoutInSeconds: 10,
      });
      const call = await calls.next("call after reconnect");
      await session.respondToMethod(call.requestId, 200, "pong");
      assert.equal((await within(result, "result after reconnect")).payload, "pong");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "after reconnect" });
      const message = await messages.next("C2D after reconnect");
      assert.equal(message.body.toString(), "after reconnect");
      await session.settleCloudMessage(message.lockToken, "complete");
    });

    it("C2D: body, properties and ids reach the handler; complete, reject and abandon reach the hub", async () => {
      const messages = new Inbox<CloudMessage>();
      const { session, deviceId } = await connectedSession({}, (s) => s.receiveCloudMessages(messages.push));
      const outcomes = feedbackFor(deviceId);
      const expiry = new Date(Date.now() + 600_000).toISOString();
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, {
        body: "open valve 3",
        messageId: "c2d-1",
        correlationId: "job-7",
        properties: { line: "A" },
        expiryTimeUtc: expiry,
        contentType: "text/plain; charset=utf-8",
      });
      const first = await messages.next("first C2D");
      assert.equal(first.body.toString(), "open valve 3");
      assert.equal(first.messageId, "c2d-1");
      assert.equal(first.correlationId, "job-7");
      assert.equal(first.properties.line, "A");
      assert.equal(first.expiryTimeUtc, expiry);
      assert.equal(first.contentType, "text/plain; charset=utf-8");
      await session.settleCloudMessage(first.lockToken, "complete");
      assert.equal(await outcomes.next("completed"), "completed");

      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "bad", messageId: "c2d-2" });
      const second = await messages.next("second C2D");
      await session.settleCloudMessage(second.lockToken, "reject");
      assert.equal(await outcomes.next("rejected"), "rejected");

      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "later", messageId: "c2d-3" });
      const third = await messages.next("third C2D");
      await session.settleCloudMessage(third.lockToken, "abandon");
      assert.equal(await outcomes.next("abandoned"), "abandoned");
      const again = await messages.next("the abandoned message, delivered again");
      assert.equal(again.messageId, "c2d-3");
      assert.notEqual(again.lockToken, third.lockToken);
      await session.settleCloudMessage(again.lockToken, "complete");
      assert.equal(await outcomes.next("completed after redelivery"), "completed");
      await assert.rejects(session.settleCloudMessage(third.lockToken, "complete"), /waits to be settled/);
    });

    it("C2D with no handler (a redeploy): held for the next handler, or abandoned and delivered again later", async () => {
      const { session, deviceId } = await connectedSession({ cloudMessageHoldMs: 1_000 });
      const outcomes = feedbackFor(deviceId);
      const before = new Inbox<CloudMessage>();
      session.receiveCloudMessages(before.push)();

      // A handler that comes back within the hold time gets the message.
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "during redeploy", messageId: "held" });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const after = new Inbox<CloudMessage>();
      const removeAfter = session.receiveCloudMessages(after.push);
      const held = await after.next("held message");
      assert.equal(held.messageId, "held");
      await session.settleCloudMessage(held.lockToken, "complete");
      assert.equal(await outcomes.next("held completed"), "completed");
      removeAfter();

      // None comes: abandoned (not completed), and delivered once a handler is back.
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "nobody home", messageId: "lonely" });
      assert.equal(await outcomes.next("abandoned without handler"), "abandoned");
      const late = new Inbox<CloudMessage>();
      session.receiveCloudMessages(late.push);
      const redelivered = await late.next("redelivered after the handler came back");
      assert.equal(redelivered.messageId, "lonely");
      await session.settleCloudMessage(redelivered.lockToken, "complete");
      assert.equal(await outcomes.next("completed at last"), "completed");
    });
  });
}
