// The emulated IoT Hub against the unmodified Azure device SDK (azure-iot-device + azure-iot-device-amqp)
// over real TLS on 127.0.0.1: telemetry, twin, desired push, direct methods, cloud-to-device messages.
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client, Message, type Twin } from "azure-iot-device";
import { Amqp } from "azure-iot-device-amqp";
import {
  startHub,
  type C2dFeedbackEvent,
  type Hub,
  type TelemetryRecord,
  type TwinSubscriptionEvent,
} from "../../src/emulator/hub/index.js";
import { HUB, hubWaits, registerSasDevice } from "../support/hub-fixture.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const { waitForEvent, withTimeout } = hubWaits(10_000);

describe("IoT Hub emulator with the unmodified device SDK", () => {
  let pki: TestPki;
  let hub: Hub;
  const key = randomBytes(32).toString("base64");
  const clients: Client[] = [];

  function connectionString(deviceId: string): string {
    return `HostName=${HUB}:${hub.port};DeviceId=${deviceId};SharedAccessKey=${key}`;
  }

  async function openClient(deviceId: string): Promise<Client> {
    const client = Client.fromConnectionString(connectionString(deviceId), Amqp);
    clients.push(client);
    await client.setOptions({ ca: pki.caCert });
    await withTimeout(client.open(), "client.open");
    return client;
  }

  before(async () => {
    pki = createTestPki();
    hub = await startHub({ tls: { key: pki.serverKey, cert: pki.serverCert }, hostNames: [HUB] });
    for (const deviceId of ["telemetry-1", "twin-1", "twin-2", "method-1", "c2d-1"])
      registerSasDevice(hub, deviceId, key);
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await hub.close();
  });

  it("receives telemetry with its application and system properties and reports the device connected", async () => {
    const connected = waitForEvent<{ deviceId: string; connected: boolean }>(
      hub.service,
      "connection",
      (event) => event.deviceId === "telemetry-1" && event.connected,
    );
    const client = await openClient("telemetry-1");
    await connected;
    assert.equal(hub.service.isConnected(HUB, "telemetry-1"), true);
    const received = waitForEvent<TelemetryRecord>(
      hub.service,
      "telemetry",
      (record) => record.deviceId === "telemetry-1",
    );
    const message = new Message(JSON.stringify({ temperature: 21.5 }));
    message.messageId = "3d1b0f7e-1e9a-4c63-9f7e-6a2b9d0c1a11";
    message.correlationId = "corr-1";
    message.contentType = "application/json";
    message.contentEncoding = "utf-8";
    message.properties.add("alert", "high");
    message.properties.add("dt-subject", "thermostat1");
    await withTimeout(client.sendEvent(message), "sendEvent");
    const record = await received;
    assert.deepEqual(JSON.parse(record.body.toString("utf8")), { temperature: 21.5 });
    assert.equal(record.hubHostName, HUB);
    assert.deepEqual(record.properties, { alert: "high" });
    assert.equal(record.systemProperties.messageId, "3d1b0f7e-1e9a-4c63-9f7e-6a2b9d0c1a11");
    assert.equal(record.systemProperties.correlationId, "corr-1");
    assert.equal(record.systemProperties.contentType, "application/json");
    assert.equal(record.systemProperties.contentEncoding, "utf-8");
    assert.equal(record.systemProperties.component, "thermostat1");
    assert.equal(record.systemProperties["iothub-connection-device-id"], "telemetry-1");
    assert.deepEqual(hub.service.recentTelemetry(HUB, "telemetry-1"), [record]);
    assert.equal(hub.service.connectionCount(), 1);
  });

  it("answers a twin GET with desired and reported sections and bumps $version on reported patches", async () => {
    hub.registry.upsertDevice(
      {
        hubHostName: HUB,
        deviceId: "twin-1",
        status: "enabled",
        authentication: { type: "sas", symmetricKey: { primaryKey: key } },
      },
      { tags: { site: "north" }, properties: { desired: { interval: 10 } } },
    );
    const client = await openClient("twin-1");
    const twin = await withTimeout(client.getTwin(), "getTwin");
    const properties = twin.properties as unknown as {
      desired: Record<string, unknown>;
      reported: Record<string, unknown> & { update(patch: unknown, done: (error?: Error) => void): void };
    };
    assert.equal(properties.desired.interval, 10);
    // The device existed before the seed replaced its desired properties: one desired update.
    assert.equal(properties.desired.$version, 2);
    assert.equal(properties.reported.$version, 1);
    const report = (patch: unknown): Promise<void> =>
      withTimeout(
        new Promise<void>((resolve, reject) =>
          properties.reported.update(patch, (error?: Error) => (error ? reject(error) : resolve())),
        ),
        "reported.update",
      );
    await report({ firmware: "1.0", nested: { a: 1 } });
    await report({ nested: { b: 2 } });
    const document = hub.service.getTwin(HUB, "twin-1");
    assert.ok(document);
    assert.deepEqual(document.properties.reported, { firmware: "1.0", nested: { a: 1, b: 2 }, $version: 3 });
    assert.deepEqual(document.tags, { site: "north" });
    await assert.rejects(report({ "bad.key": 1 }), (error: Error & { amqpError?: Error }) => {
      assert.equal(error.amqpError?.name, "FormatError");
      return true;
    });
    assert.equal(hub.service.getTwin(HUB, "twin-1")?.properties.reported.$version, 3);
  });

  it("pushes a desired patch made with service.updateTwin to twin.on('properties.desired')", async () => {
    const client = await openClient("twin-2");
    const twin: Twin = await withTimeout(client.getTwin(), "getTwin");
    const patches: Record<string, unknown>[] = [];
    const subscribed = waitForEvent<TwinSubscriptionEvent>(
      hub.service,
      "twinSubscription",
      (event) => event.deviceId === "twin-2" && event.subscribed,
    );
    const updated = new Promise<Record<string, unknown>>((resolve) => {
      twin.on("properties.desired", (delta: Record<string, unknown>) => {
        patches.push(delta);
        if (delta.$version === 2) resolve(delta);
      });
    });
    // The subscription (PUT) is sent when the first listener is added; a patch before it would not be pushed.
    await subscribed;
    const document = hub.service.updateTwin(HUB, "twin-2", {
      properties: { desired: { interval: 7, mode: { eco: true } } },
    });
    assert.equal(document.properties.desired.$version, 2);
    const delta = await withTimeout(updated, "desired notification");
    assert.equal(delta.interval, 7);
    assert.deepEqual(delta.mode, { eco: true });
    assert.equal((twin.properties as unknown as { desired: { interval: number } }).desired.interval, 7);
  });

  it("round-trips a direct method and reports DeviceNotOnline for a device without a method link", async () => {
    const client = await openClient("method-1");
    client.onDeviceMethod("reboot", (request, response) => {
      response.send(200, { ok: true, echo: request.payload as unknown }, () => undefined);
    });
    // onDeviceMethod attaches the method links in the background; connectTimeout waits for them like IoT Hub does.
    const result = await hub.service.invokeMethod(HUB, "method-1", {
      methodName: "reboot",
      payload: { delay: 3 },
      connectTimeoutInSeconds: 10,
    });
    assert.deepEqual(result, { status: 200, payload: { ok: true, echo: { delay: 3 } } });
    await assert.rejects(hub.service.invokeMethod(HUB, "twin-1", { methodName: "reboot" }), {
      name: "HubServiceError",
      status: 404,
      errorCode: "DeviceNotOnline",
    });
  });

  it("delivers a cloud-to-device message queued before the device listened and sees it completed", async () => {
    hub.service.sendCloudToDevice(HUB, "c2d-1", {
      body: "hello",
      messageId: "c2d-message-1",
      correlationId: "c2d-corr",
      properties: { a: "b" },
    });
    const client = await openClient("c2d-1");
    const feedback = waitForEvent<C2dFeedbackEvent>(
      hub.service,
      "c2dFeedback",
      (event) => event.deviceId === "c2d-1",
    );
    // A persistent listener: client.once('message') would detach the C2D link after one message (SDK behaviour).
    const received = await withTimeout(
      new Promise<Message>((resolve) => client.on("message", (message: Message) => resolve(message))),
      "C2D message",
    );
    assert.equal((received.data as Buffer).toString(), "hello");
    assert.equal(received.messageId, "c2d-message-1");
    assert.equal(received.correlationId, "c2d-corr");
    assert.equal(received.properties.getValue("a"), "b");
    await withTimeout(client.complete(received), "complete");
    assert.deepEqual(await feedback, {
      hubHostName: HUB,
      deviceId: "c2d-1",
      messageId: "c2d-message-1",
      outcome: "completed",
    });
  });
});
