// The emulator page's commands to a device, through its JSON API over real HTTP on loopback, to devices that
// run the unmodified device SDK over AMQP and MQTT: a direct method answered by client.onDeviceMethod (its
// status and payload come back; no answer in time, an offline device and an unknown one give the errors the
// page shows), and cloud-to-device messages the device completes, rejects or abandons, whose state the page
// polls until the hub reports the settlement.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, type DeviceMethodRequest, type DeviceMethodResponse, type Message } from "azure-iot-device";
import { Mqtt as HubMqtt } from "azure-iot-device-mqtt";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { hubClientFor, provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";

interface Answer {
  status: number;
  json: Record<string, unknown>;
}

describe("emulator web page: direct methods and cloud-to-device messages", () => {
  let dir: string;
  let emulator: Emulator;
  let base: string;
  let token: string;
  const devices: Client[] = [];
  const groupKey = Buffer.alloc(32, 11).toString("base64");
  const amqpDeviceId = "web-commands-amqp";
  const mqttDeviceId = "web-commands-mqtt";
  const offlineDeviceId = "web-commands-offline";
  const received: Message[] = [];
  const methodCalls: Array<{ methodName: string; payload: unknown }> = [];

  async function api(
    path: string,
    options: { method?: string; body?: unknown; contentType?: string } = {},
  ): Promise<Answer> {
    const init: RequestInit = {
      method: options.method ?? "GET",
      headers: {
        Authorization: `Bearer ${token}`,
        ...(options.body !== undefined ? { "Content-Type": options.contentType ?? "application/json" } : {}),
      },
      ...(options.body !== undefined
        ? { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) }
        : {}),
    };
    const response = await withTimeout(fetch(`${base}${path}`, init), `${init.method} ${path}`);
    const text = await response.text();
    return { status: response.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  /** Polls the message's state as the page does, until it is final (bounded). */
  async function finalState(deviceId: string, messageId: string): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const answer = await api(
        `/ui/api/devices/${deviceId}/messages/devicebound/${encodeURIComponent(messageId)}`,
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      if (answer.json.final === true) return answer.json;
      if (Date.now() > deadline) assert.fail(`message ${messageId} still ${String(answer.json.state)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  function answerMethods(client: Client, names: string[]): void {
    for (const methodName of names) {
      client.onDeviceMethod(methodName, (request: DeviceMethodRequest, response: DeviceMethodResponse) => {
        methodCalls.push({ methodName, payload: request.payload });
        const payload = request.payload as { answerStatus?: number; echo?: unknown } | null;
        response.send(
          payload?.answerStatus ?? 200,
          { method: methodName, echo: payload?.echo ?? null },
          () => undefined,
        );
      });
    }
  }

  function settleByProperty(client: Client): void {
    const abandonedOnce = new Set<string>();
    client.on("message", (message: Message) => {
      received.push(message);
      const action = message.properties.getValue("action") as string | undefined;
      const done = (): void => undefined;
      if (action === "reject") client.reject(message, done);
      else if (action === "abandon-once" && !abandonedOnce.has(String(message.messageId))) {
        abandonedOnce.add(String(message.messageId));
        client.abandon(message, done);
      } else client.complete(message, done);
    });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-web-commands-"));
    emulator = await startEmulator({ dataDir: join(dir, "data") });
    const url = new URL(emulator.ui.url);
    token = url.searchParams.get("token") ?? "";
    base = `${url.protocol}//${url.host}`;
    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: "web-commands",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
    });
    const amqp = await hubClientFor(emulator, await provisionGroupDevice(emulator, groupKey, amqpDeviceId));
    devices.push(amqp);
    answerMethods(amqp, ["setRecipe", "failing"]);
    settleByProperty(amqp);
    await withTimeout(amqp.open(), "AMQP device open");
    // Registered through DPS, never connected.
    await provisionGroupDevice(emulator, groupKey, offlineDeviceId);
  });

  after(async () => {
    for (const device of devices) await device.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("invokes a method and returns the device's status and payload, as Azure's method result", async () => {
    const answer = await api(`/ui/api/devices/${amqpDeviceId}/methods`, {
      method: "POST",
      body: { methodName: "setRecipe", payload: { echo: { recipe: "B-7" } }, responseTimeoutInSeconds: 10 },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    assert.deepEqual(answer.json, { status: 200, payload: { method: "setRecipe", echo: { recipe: "B-7" } } });
    assert.deepEqual(methodCalls.at(-1), { methodName: "setRecipe", payload: { echo: { recipe: "B-7" } } });

    // The device's own error status is an answer, not an error of the call.
    const failing = await api(`/ui/api/devices/${amqpDeviceId}/methods`, {
      method: "POST",
      body: { methodName: "failing", payload: { answerStatus: 500 } },
    });
    assert.equal(failing.status, 200);
    assert.equal(failing.json.status, 500);
  });

  it("carries markup in a method payload as data", async () => {
    const hostile = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">';
    const answer = await api(`/ui/api/devices/${amqpDeviceId}/methods`, {
      method: "POST",
      body: { methodName: "setRecipe", payload: { echo: hostile } },
    });
    assert.equal(answer.status, 200);
    assert.equal((answer.json.payload as { echo: string }).echo, hostile);
  });

  it("answers 504 when the device does not answer within the response timeout", async () => {
    // The device listens for methods but has no handler for this name, so nothing answers.
    const started = Date.now();
    const answer = await api(`/ui/api/devices/${amqpDeviceId}/methods`, {
      method: "POST",
      body: { methodName: "nobodyAnswers", responseTimeoutInSeconds: 5 },
    });
    assert.equal(answer.status, 504, JSON.stringify(answer.json));
    assert.equal((answer.json.error as { code: string }).code, "GatewayTimeout");
    assert.ok(Date.now() - started >= 4_900, "it waited for the timeout the page asked for");
  });

  it("answers 404 for a device that is offline or unknown, and 400/415 for a bad call", async () => {
    const offline = await api(`/ui/api/devices/${offlineDeviceId}/methods`, {
      method: "POST",
      body: { methodName: "setRecipe" },
    });
    assert.equal(offline.status, 404);
    assert.equal((offline.json.error as { code: string }).code, "DeviceNotOnline");
    const unknown = await api("/ui/api/devices/no-such-device/methods", {
      method: "POST",
      body: { methodName: "setRecipe" },
    });
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json.error as { code: string }).code, "DeviceNotFound");
    const bad: Array<[unknown, string]> = [
      [{}, "no method name"],
      [{ methodName: "x".repeat(129) }, "a name too long"],
      [{ methodName: "setRecipe", responseTimeoutInSeconds: 2 }, "a timeout under 5 s"],
      [{ methodName: "setRecipe", responseTimeoutInSeconds: 301 }, "a timeout over 300 s"],
      ["{methodName:", "not JSON"],
    ];
    const before = methodCalls.length;
    for (const [body, what] of bad) {
      const answer = await api(`/ui/api/devices/${amqpDeviceId}/methods`, { method: "POST", body });
      assert.equal(answer.status, 400, what);
      assert.ok((answer.json.error as { message: string }).message.length > 0, what);
    }
    const plain = await api(`/ui/api/devices/${amqpDeviceId}/methods`, {
      method: "POST",
      body: JSON.stringify({ methodName: "setRecipe" }),
      contentType: "text/plain",
    });
    assert.equal(plain.status, 415);
    assert.equal((await api(`/ui/api/devices/${amqpDeviceId}/methods`)).status, 405);
    assert.equal(methodCalls.length, before, "no bad call reached the device");
  });

  it("sends a C2D message with content type and properties; the device completes it and the page sees it", async () => {
    const sent = await api(`/ui/api/devices/${amqpDeviceId}/messages/devicebound`, {
      method: "POST",
      body: {
        body: JSON.stringify({ recipe: "B-7" }),
        contentType: "application/json",
        properties: { line: "3", priority: 2, urgent: true },
        ack: "full",
        correlationId: "order-17",
      },
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.json));
    const messageId = String(sent.json.messageId);
    assert.match(messageId, /^[0-9a-f-]{36}$/, "the page's API gives the message an id");
    assert.equal(sent.json.ack, "full");
    const settled = await finalState(amqpDeviceId, messageId);
    assert.equal(settled.state, "completed");
    assert.equal(settled.feedbackStatusCode, "Success");
    assert.equal(settled.abandonCount, 0);

    const message = received.find((m) => m.messageId === messageId);
    assert.ok(message, "the device received it");
    assert.deepEqual(JSON.parse((message.getData() as Buffer).toString("utf8")), { recipe: "B-7" });
    assert.equal(message.contentType, "application/json");
    assert.equal(message.correlationId, "order-17");
    assert.equal(message.properties.getValue("line"), "3");
    assert.equal(message.properties.getValue("priority"), "2");
    assert.equal(message.properties.getValue("urgent"), "true");
    assert.equal(message.ack, "full");
  });

  it("shows a rejected message as rejected, and an abandoned one as abandoned then completed", async () => {
    const rejected = await api(`/ui/api/devices/${amqpDeviceId}/messages/devicebound`, {
      method: "POST",
      body: {
        body: "no",
        contentType: "text/plain",
        properties: { action: "reject" },
        messageId: "web-reject-1",
      },
    });
    assert.equal(rejected.status, 201);
    assert.equal(rejected.json.messageId, "web-reject-1");
    const rejectedState = await finalState(amqpDeviceId, "web-reject-1");
    assert.equal(rejectedState.state, "rejected");
    assert.equal(rejectedState.feedbackStatusCode, "Rejected");

    const abandoned = await api(`/ui/api/devices/${amqpDeviceId}/messages/devicebound`, {
      method: "POST",
      body: { body: "again", properties: { action: "abandon-once" }, messageId: "web-abandon-1" },
    });
    assert.equal(abandoned.status, 201);
    const abandonedState = await finalState(amqpDeviceId, "web-abandon-1");
    assert.equal(abandonedState.state, "completed");
    assert.equal(abandonedState.abandonCount, 1);
    assert.equal(received.filter((m) => m.messageId === "web-abandon-1").length, 2, "delivered twice");
  });

  it("keeps a message for an offline device queued, and refuses bad messages without queueing them", async () => {
    const queued = await api(`/ui/api/devices/${offlineDeviceId}/messages/devicebound`, {
      method: "POST",
      body: { body: "later", messageId: "web-offline-1" },
    });
    assert.equal(queued.status, 201);
    const state = await api(`/ui/api/devices/${offlineDeviceId}/messages/devicebound/web-offline-1`);
    assert.equal(state.json.state, "queued");
    assert.equal(state.json.final, false);

    const receivedBefore = received.length;
    const bad: Array<[unknown, string]> = [
      [{ body: { not: "text" } }, "a body that is not text"],
      [{ body: "x", properties: { "iothub-ack": "full" } }, "a reserved property name"],
      [{ body: "x", properties: ["a"] }, "properties as an array"],
      [{ body: "x", properties: { nested: { a: 1 } } }, "an object as a property value"],
      [{ body: "x", ack: "always" }, "an unknown ack"],
      [{ body: "x", expiryTimeUtc: "tomorrow" }, "an expiry that is not a date"],
      [{ body: "x".repeat(64 * 1024 + 1) }, "a body over 64 KB"],
    ];
    for (const [body, what] of bad) {
      const answer = await api(`/ui/api/devices/${amqpDeviceId}/messages/devicebound`, {
        method: "POST",
        body,
      });
      assert.ok(answer.status === 400 || answer.status === 413, `${what}: ${answer.status}`);
    }
    const unknownDevice = await api("/ui/api/devices/no-such-device/messages/devicebound", {
      method: "POST",
      body: { body: "x" },
    });
    assert.equal(unknownDevice.status, 404);
    assert.equal((await api(`/ui/api/devices/${amqpDeviceId}/messages/devicebound/never-sent`)).status, 404);
    // Give a wrongly queued message time to arrive: the device would have received it by now.
    const probe = await api(`/ui/api/devices/${amqpDeviceId}/messages/devicebound`, {
      method: "POST",
      body: { body: "probe", messageId: "web-probe-1" },
    });
    assert.equal(probe.status, 201);
    await finalState(amqpDeviceId, "web-probe-1");
    assert.deepEqual(
      received.slice(receivedBefore).map((m) => m.messageId),
      ["web-probe-1"],
      "none of the refused messages reached the device",
    );
  });

  it("delivers the content type to an MQTT device too, and reports its completion", async () => {
    const device = await provisionGroupDevice(emulator, groupKey, mqttDeviceId);
    const client = Client.fromConnectionString(
      `HostName=${device.result.assignedHub};GatewayHostName=${emulator.endpoints.hub.mqtt};` +
        `DeviceId=${mqttDeviceId};SharedAccessKey=${device.deviceKey}`,
      HubMqtt,
    );
    devices.push(client);
    await client.setOptions({ ca: emulator.caPem });
    settleByProperty(client);
    await withTimeout(client.open(), "MQTT device open");
    const sent = await api(`/ui/api/devices/${mqttDeviceId}/messages/devicebound`, {
      method: "POST",
      body: { body: '{"a":1}', contentType: "application/json", properties: { line: "4" } },
    });
    assert.equal(sent.status, 201);
    const settled = await finalState(mqttDeviceId, String(sent.json.messageId));
    assert.equal(settled.state, "completed");
    const message = received.find((m) => m.messageId === sent.json.messageId);
    assert.equal(message?.contentType, "application/json");
    assert.equal(message?.properties.getValue("line"), "4");
  });
});
