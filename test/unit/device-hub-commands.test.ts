// Direct methods and cloud-to-device messages through the unmodified SDK Client, on an MQTT transport that is
// made but never connected: only the transport's network calls (attach, answer, settle) are replaced by
// recorders, so what the Client does with our listeners is the SDK's own behaviour.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Client, Message } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { HubCommands } from "../../src/device/hub-commands.js";
import type { IncomingCloudMessage } from "../../src/device/c2d-inbox.js";
import type { IncomingMethodCall } from "../../src/device/method-dispatcher.js";
import { HubError } from "../../src/device/errors.js";

const CONNECTION_STRING = `HostName=hub.example;DeviceId=dev-1;SharedAccessKey=${Buffer.from("k".repeat(32)).toString("base64")}`;

type Callback = (error?: Error) => void;

/** A Client whose transport records attaches, answers and settlements instead of sending them. */
function world(options: { enableMethodsFails?: number } = {}) {
  const client = Client.fromConnectionString(CONNECTION_STRING, Mqtt);
  const transport = client._transport as unknown as Mqtt & Record<string, unknown>;
  const recorded = {
    enableMethods: 0,
    enableC2D: 0,
    answers: [] as Array<{ requestId: string; status: number; payload: unknown }>,
    settled: [] as Array<[string, Message]>,
  };
  let failures = options.enableMethodsFails ?? 0;
  Object.assign(transport, {
    enableMethods(done: Callback) {
      recorded.enableMethods += 1;
      if (failures > 0) {
        failures -= 1;
        done(new Error("attach refused"));
      } else done();
    },
    enableC2D(done: Callback) {
      recorded.enableC2D += 1;
      done();
    },
    sendMethodResponse(response: { requestId: string; status: number; payload: unknown }, done: Callback) {
      recorded.answers.push({
        requestId: response.requestId,
        status: response.status,
        payload: response.payload,
      });
      done();
    },
    complete: (message: Message, done: Callback) => settle("complete", message, done),
    abandon: (message: Message, done: Callback) => settle("abandon", message, done),
    reject: (message: Message, done: Callback) => settle("reject", message, done),
  });
  function settle(kind: string, message: Message, done: Callback): void {
    recorded.settled.push([kind, message]);
    done();
  }
  const calls: IncomingMethodCall[] = [];
  const messages: IncomingCloudMessage[] = [];
  let usable = true;
  const commands = new HubCommands(client, client._transport, {
    method: (call) => calls.push(call),
    cloudMessage: (message) => messages.push(message),
    usable: () => usable,
  });
  /** What the MQTT transport emits for a method request from the hub. */
  const invoke = (methodName: string, requestId: unknown, body: unknown = null) =>
    transport.emit(`method_${methodName}`, { methods: { methodName }, requestId, body });
  return {
    client,
    transport,
    commands,
    recorded,
    calls,
    messages,
    invoke,
    lose: () => (usable = false),
  };
}

/** What a message handed over carries, its settle function aside. */
function withoutSettle(message: IncomingCloudMessage): Omit<IncomingCloudMessage, "settle"> {
  const copy: Partial<IncomingCloudMessage> = { ...message };
  assert.equal(typeof copy.settle, "function");
  delete copy.settle;
  return copy as Omit<IncomingCloudMessage, "settle">;
}

describe("hub commands: direct methods", () => {
  it("attaches once, registers each name once, and hands calls over with their payload", async () => {
    const w = world();
    await w.commands.enableMethods(["reboot"]);
    await w.commands.enableMethods(["reboot", "reset"]);
    assert.equal(w.recorded.enableMethods, 1 + 2, "one attach of ours, one by each onDeviceMethod");
    assert.equal(w.transport.listenerCount("method_reboot"), 1);
    assert.equal(w.transport.listenerCount("method_reset"), 1);
    w.invoke("reboot", "r-7", Buffer.from('{"delay":5}'));
    assert.equal(w.calls.length, 1);
    assert.equal(w.calls[0].requestId, "r-7");
    assert.equal(w.calls[0].methodName, "reboot");
    assert.deepEqual(w.calls[0].payload, { delay: 5 });
    await w.calls[0].respond(200, { done: true });
    assert.deepEqual(w.recorded.answers, [{ requestId: "r-7", status: 200, payload: { done: true } }]);
  });

  it("hands over a call whose name nobody registered, and one without a payload", async () => {
    const w = world();
    await w.commands.enableMethods([]);
    w.invoke("unknown", "r-2", Buffer.from('{"x":"y"}'));
    w.invoke("empty", "r-3", null);
    assert.deepEqual(
      w.calls.map((c) => [c.requestId, c.methodName, c.payload]),
      [
        ["r-2", "unknown", { x: "y" }],
        ["r-3", "empty", undefined],
      ],
    );
    await w.calls[0].respond(404, { message: "no" });
    assert.deepEqual(w.recorded.answers, [{ requestId: "r-2", status: 404, payload: { message: "no" } }]);
  });

  it("answers 400 itself for an unregistered call whose body is not JSON, and drops one it cannot address", async () => {
    const w = world();
    await w.commands.enableMethods([]);
    w.invoke("broken", "r-4", Buffer.from("{not json"));
    for (const requestId of [undefined, "", 5]) w.invoke("noid", requestId, Buffer.from("{}"));
    w.transport.emit("method_nameless", { requestId: "r-5", methods: {} });
    assert.doesNotThrow(() => w.transport.emit("method_bare", { requestId: "r-9" }));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(w.calls.length, 0);
    assert.equal(w.recorded.answers.length, 1);
    assert.equal(w.recorded.answers[0].requestId, "r-4");
    assert.equal(w.recorded.answers[0].status, 400);
    assert.match(String(w.recorded.answers[0].payload), /^Invalid request format: /);
  });

  it("refuses to answer once the connection is gone", async () => {
    const w = world();
    await w.commands.enableMethods(["reboot"]);
    w.invoke("reboot", "r-6");
    w.lose();
    await assert.rejects(
      w.calls[0].respond(200, null),
      (e: unknown) =>
        e instanceof HubError &&
        e.deviceId === "" &&
        e.message === 'method "reboot" cannot be answered: the connection it came on is gone',
    );
    assert.equal(w.recorded.answers.length, 0);
  });

  it("attaches again after a failed attach, and registers no name before it succeeds", async () => {
    const w = world({ enableMethodsFails: 1 });
    await assert.rejects(w.commands.enableMethods(["reboot"]), /attach refused/);
    assert.equal(w.transport.listenerCount("method_reboot"), 0);
    await w.commands.enableMethods(["reboot"]);
    assert.equal(w.transport.listenerCount("method_reboot"), 1);
  });

  it("release() takes the catch-all away: an unregistered call is the SDK's to drop again", async () => {
    const w = world();
    await w.commands.enableMethods([]);
    await w.commands.enableMethods(["reboot"]);
    assert.equal(Object.prototype.hasOwnProperty.call(w.transport, "emit"), true);
    w.commands.release();
    assert.equal(Object.prototype.hasOwnProperty.call(w.transport, "emit"), false);
    w.invoke("unknown", "r-8");
    assert.equal(w.calls.length, 0);
    w.commands.release();
  });
});

describe("hub commands: cloud-to-device messages", () => {
  it("listens once, and hands over body, properties and system properties present", () => {
    const w = world();
    w.commands.receiveCloudMessages();
    w.commands.receiveCloudMessages();
    assert.equal(w.client.listenerCount("message"), 1);
    assert.equal(w.recorded.enableC2D, 1);
    const message = new Message(Buffer.from("hello"));
    message.messageId = "m-1";
    message.correlationId = "c-1";
    message.contentType = "text/plain" as Message["contentType"];
    message.contentEncoding = "utf-8";
    message.expiryTimeUtc = "2030-01-01T00:00:00.000Z";
    message.properties.add("site", "plant-a");
    message.properties.add("n", 42 as unknown as string);
    w.transport.emit("message", message);
    assert.equal(w.messages.length, 1);
    assert.deepEqual(withoutSettle(w.messages[0]), {
      body: Buffer.from("hello"),
      properties: { site: "plant-a", n: "42" },
      contentType: "text/plain",
      contentEncoding: "utf-8",
      messageId: "m-1",
      correlationId: "c-1",
      expiryTimeUtc: "2030-01-01T00:00:00.000Z",
    });
  });

  it("leaves out what the message does not carry; reads a string, bytes or nothing as the body", () => {
    const w = world();
    w.commands.receiveCloudMessages();
    for (const data of ["text é", new Uint8Array([1, 2, 3]), undefined]) {
      w.transport.emit("message", new Message(data as string));
    }
    const bodies = w.messages.map(withoutSettle);
    assert.deepEqual(bodies, [
      { body: Buffer.from("text é"), properties: {} },
      { body: Buffer.from([1, 2, 3]), properties: {} },
      { body: Buffer.alloc(0), properties: {} },
    ]);
  });

  it("gives an expiry given as a Date or a number as ISO 8601", () => {
    const w = world();
    w.commands.receiveCloudMessages();
    const at = Date.UTC(2031, 1, 2, 3, 4, 5);
    for (const expiry of [new Date(at), at, ""]) {
      const message = new Message("x");
      message.expiryTimeUtc = expiry;
      w.transport.emit("message", message);
    }
    assert.deepEqual(
      w.messages.map((m) => m.expiryTimeUtc),
      ["2031-02-02T03:04:05.000Z", "2031-02-02T03:04:05.000Z", undefined],
    );
  });

  it("settles each way through the Client, and refuses once the connection is gone", async () => {
    const w = world();
    w.commands.receiveCloudMessages();
    for (let i = 0; i < 4; i++) w.transport.emit("message", new Message(`m${i}`));
    await w.messages[0].settle("complete");
    await w.messages[1].settle("abandon");
    await w.messages[2].settle("reject");
    assert.deepEqual(
      w.recorded.settled.map(([kind, message]) => [kind, message.getData() as string]),
      [
        ["complete", "m0"],
        ["abandon", "m1"],
        ["reject", "m2"],
      ],
    );
    w.lose();
    await assert.rejects(
      w.messages[3].settle("complete"),
      (e: unknown) =>
        e instanceof HubError &&
        e.deviceId === "" &&
        e.message ===
          "the cloud-to-device message cannot be settled (complete): the connection it came on is gone; the hub delivers it again",
    );
    assert.equal(w.recorded.settled.length, 3);
  });

  it("release() stops the hand-over, and receiving may start again", () => {
    const w = world();
    w.commands.receiveCloudMessages();
    w.commands.release();
    assert.equal(w.client.listenerCount("message"), 0);
    w.transport.emit("message", new Message("late"));
    assert.equal(w.messages.length, 0);
    w.commands.receiveCloudMessages();
    assert.equal(w.client.listenerCount("message"), 1);
  });
});
