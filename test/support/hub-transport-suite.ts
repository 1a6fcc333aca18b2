// One set of device-SDK checks run over each hub transport (MQTT, MQTT and AMQP over WebSocket, HTTPS): the
// unmodified azure-iot-device Client with that transport against a running emulated hub.
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { after, it } from "node:test";
import assert from "node:assert/strict";
import { Client, Message, type Twin } from "azure-iot-device";
import type {
  C2dFeedbackEvent,
  ConnectionEvent,
  Hub,
  TelemetryRecord,
} from "../../src/emulator/hub/index.js";
import { hubWaits } from "./hub-fixture.js";

const { waitForEvent, withTimeout } = hubWaits(15_000);

/** How the device settles cloud-to-device messages on this transport. */
export type C2dSettlement =
  /** complete / reject / abandon each reach the hub (AMQP dispositions, HTTPS DELETE / POST abandon). */
  | "explicit"
  /** The MQTT PUBACK completes every message; the SDK refuses reject and abandon. */
  | "puback";

export interface TransportUnderTest {
  /** The transport class of the SDK (Mqtt, MqttWs, AmqpWs, Http). */
  transport: Parameters<typeof Client.fromConnectionString>[1];
  hub(): Hub;
  /** The hub's logical name, as the device registry knows it. */
  hubHostName: string;
  /** HostName[;GatewayHostName] part of the device connection string. */
  hostPart(): string;
  caCert(): string;
  /** Further client options given with the CA. */
  clientOptions?: Record<string, unknown>;
  c2d: C2dSettlement;
  /** The SDK's Http transport keeps the "iothub-app-" header prefix in C2D property names. */
  c2dPropertyPrefix?: string;
  /** Twin and direct methods (the device HTTPS API has neither). */
  twinAndMethods: boolean;
  /** Asserts that opening (or the first operation of) a client with a wrong key failed the transport's way. */
  assertRefused(error: unknown): boolean;
}

/** Registers the shared checks as node:test cases inside the caller's describe(). */
export function deviceSdkChecks(under: TransportUnderTest): void {
  const key = randomBytes(32).toString("base64");
  const clients: Client[] = [];
  let sequence = 0;

  // Unique per suite too: several suites may share one hub.
  const suite = randomBytes(3).toString("hex");
  function register(prefix: string): string {
    sequence += 1;
    const deviceId = `${prefix}-${suite}-${sequence}`;
    under.hub().registry.upsertDevice({
      hubHostName: under.hubHostName,
      deviceId,
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    return deviceId;
  }

  async function client(deviceId: string, sharedAccessKey = key): Promise<Client> {
    const created = Client.fromConnectionString(
      `${under.hostPart()};DeviceId=${deviceId};SharedAccessKey=${sharedAccessKey}`,
      under.transport,
    );
    clients.push(created);
    await withTimeout(created.setOptions({ ca: under.caCert(), ...under.clientOptions }), "setOptions");
    return created;
  }

  async function openClient(deviceId: string): Promise<Client> {
    const opened = await client(deviceId);
    await withTimeout(opened.open(), "client.open");
    return opened;
  }

  function receiveC2d(device: Client, count: number): Promise<Message[]> {
    return withTimeout(
      new Promise<Message[]>((resolve) => {
        const received: Message[] = [];
        device.on("message", (message: Message) => {
          received.push(message);
          if (received.length === count) resolve(received);
        });
      }),
      "C2D messages",
    );
  }

  it("records telemetry with its application and system properties", async () => {
    const hub = under.hub();
    const deviceId = register("telemetry");
    const device = await openClient(deviceId);
    const received = waitForEvent<TelemetryRecord>(hub.service, "telemetry", (r) => r.deviceId === deviceId);
    const message = new Message(JSON.stringify({ temperature: 21.5 }));
    message.messageId = "message-1";
    message.correlationId = "corr-1";
    message.contentType = "application/json";
    message.contentEncoding = "utf-8";
    message.properties.add("alert", "high & mighty/ok");
    await withTimeout(device.sendEvent(message), "sendEvent");
    const record = await received;
    assert.deepEqual(JSON.parse(record.body.toString("utf8")), { temperature: 21.5 });
    assert.equal(record.hubHostName, under.hubHostName);
    assert.deepEqual(record.properties, { alert: "high & mighty/ok" });
    assert.equal(record.systemProperties.messageId, "message-1");
    assert.equal(record.systemProperties.correlationId, "corr-1");
    assert.equal(record.systemProperties.contentType, "application/json");
    assert.equal(record.systemProperties.contentEncoding, "utf-8");
    assert.equal(record.systemProperties["iothub-connection-device-id"], deviceId);
    assert.match(record.systemProperties["iothub-connection-auth-method"] ?? "", /"type":"sas"/);
    assert.deepEqual(hub.service.recentTelemetry(under.hubHostName, deviceId), [record]);
  });

  it("refuses a wrong key and an unknown device the transport's way", async () => {
    const hub = under.hub();
    const deviceId = register("refused");
    const wrongKey = await client(deviceId, randomBytes(32).toString("base64"));
    const refusal = await withTimeout(
      wrongKey.open().then(() => wrongKey.sendEvent(new Message("must not arrive"))),
      "open with a wrong key",
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(refusal, "a client with a wrong key was accepted");
    assert.ok(under.assertRefused(refusal));
    const unknown = await client("nobody-registered");
    const unknownRefusal = await withTimeout(
      unknown.open().then(() => unknown.sendEvent(new Message("must not arrive"))),
      "open of an unknown device",
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    assert.ok(unknownRefusal, "an unknown device was accepted");
    assert.ok(under.assertRefused(unknownRefusal));
    assert.equal(hub.service.recentTelemetry(under.hubHostName, deviceId).length, 0);
    assert.equal(hub.service.isConnected(under.hubHostName, deviceId), false);
  });

  if (under.twinAndMethods) {
    it("reports the device connected and disconnected", async () => {
      const hub = under.hub();
      const deviceId = register("connection");
      const connected = waitForEvent<ConnectionEvent>(
        hub.service,
        "connection",
        (event) => event.deviceId === deviceId && event.connected,
      );
      const device = await openClient(deviceId);
      await connected;
      assert.equal(hub.service.isConnected(under.hubHostName, deviceId), true);
      const disconnected = waitForEvent<ConnectionEvent>(
        hub.service,
        "connection",
        (event) => event.deviceId === deviceId && !event.connected,
      );
      await withTimeout(device.close(), "close");
      await disconnected;
      assert.equal(hub.service.isConnected(under.hubHostName, deviceId), false);
    });

    it("answers twin GET, applies reported patches and pushes desired patches including null", async () => {
      const hub = under.hub();
      const deviceId = register("twin");
      hub.service.updateTwin(under.hubHostName, deviceId, {
        properties: { desired: { interval: 10, mode: { eco: true } } },
      });
      const device = await openClient(deviceId);
      const twin: Twin = await withTimeout(device.getTwin(), "getTwin");
      const properties = twin.properties as unknown as {
        desired: Record<string, unknown>;
        reported: Record<string, unknown> & {
          update(patch: unknown, done: (error?: Error) => void): void;
        };
      };
      assert.equal(properties.desired.interval, 10);
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
      assert.deepEqual(hub.service.getTwin(under.hubHostName, deviceId)?.properties.reported, {
        firmware: "1.0",
        nested: { a: 1, b: 2 },
        $version: 3,
      });
      await assert.rejects(report({ "bad.key": 1 }));
      assert.equal(hub.service.getTwin(under.hubHostName, deviceId)?.properties.reported.$version, 3);

      // The SDK also re-reads the whole twin when it subscribes; the pushed deltas are what this checks.
      const expected = [
        { interval: 7, $version: 3 },
        { mode: null, $version: 4 },
      ];
      const patches: Record<string, unknown>[] = [];
      const bothPatches = new Promise<void>((resolve) => {
        twin.on("properties.desired", (delta: Record<string, unknown>) => {
          patches.push(delta);
          if (expected.every((patch) => patches.some((seen) => isDeepStrictEqual(seen, patch)))) resolve();
        });
      });
      await waitForEvent(
        hub.service,
        "twinSubscription",
        (event: { deviceId: string; subscribed: boolean }) => event.deviceId === deviceId && event.subscribed,
      );
      hub.service.updateTwin(under.hubHostName, deviceId, { properties: { desired: { interval: 7 } } });
      hub.service.updateTwin(under.hubHostName, deviceId, { properties: { desired: { mode: null } } });
      await withTimeout(bothPatches, `desired patches (seen ${JSON.stringify(patches)})`);
      const desired = (twin.properties as unknown as { desired: Record<string, unknown> }).desired;
      assert.equal(desired.interval, 7);
      assert.equal(desired.mode, undefined);
      assert.deepEqual(hub.service.getTwin(under.hubHostName, deviceId)?.properties.desired, {
        interval: 7,
        $version: 4,
      });
    });

    it("delivers a direct method invoked through the service and returns the device's answer", async () => {
      const hub = under.hub();
      const deviceId = register("method");
      const device = await openClient(deviceId);
      device.onDeviceMethod("reboot", (request, response) => {
        response.send(201, { ok: true, echo: request.payload as unknown }, () => undefined);
      });
      const result = await hub.service.invokeMethod(under.hubHostName, deviceId, {
        methodName: "reboot",
        payload: { delay: 3 },
        connectTimeoutInSeconds: 10,
      });
      assert.deepEqual(result, { status: 201, payload: { ok: true, echo: { delay: 3 } } });
      await assert.rejects(
        hub.service.invokeMethod(under.hubHostName, deviceId, {
          methodName: "unknown",
          responseTimeoutInSeconds: 5,
        }),
        { name: "HubServiceError", status: 504 },
      );
    });
  }

  it("delivers cloud-to-device messages with their properties and reports how the device settled them", async () => {
    const hub = under.hub();
    const deviceId = register("c2d");
    const feedback: C2dFeedbackEvent[] = [];
    const onFeedback = (event: C2dFeedbackEvent): void => {
      if (event.deviceId === deviceId) feedback.push(event);
    };
    hub.service.on("c2dFeedback", onFeedback);
    try {
      // Queued before the device listens: delivered once it does.
      hub.service.sendCloudToDevice(under.hubHostName, deviceId, {
        body: "first",
        messageId: "c2d-1",
        correlationId: "c2d-corr",
        properties: { a: "b/c" },
      });
      const device = await openClient(deviceId);
      const [first] = await receiveC2d(device, 1);
      assert.ok(first);
      assert.equal((first.data as Buffer).toString(), "first");
      assert.equal(first.messageId, "c2d-1");
      assert.equal(first.correlationId, "c2d-corr");
      assert.equal(first.properties.getValue(`${under.c2dPropertyPrefix ?? ""}a`), "b/c");
      // Over MQTT the PUBACK completes the message (maybe before this line); elsewhere complete() does.
      const completed = feedback.some((e) => e.messageId === "c2d-1")
        ? Promise.resolve()
        : waitForEvent<C2dFeedbackEvent>(hub.service, "c2dFeedback", (e) => e.messageId === "c2d-1");
      await withTimeout(device.complete(first), "complete");
      await completed;
      if (under.c2d === "puback") {
        await assert.rejects(async () => device.reject(first), { name: "NotImplementedError" });
        await assert.rejects(async () => device.abandon(first), { name: "NotImplementedError" });
        assert.deepEqual(
          feedback.map((e) => [e.messageId, e.outcome]),
          [["c2d-1", "completed"]],
        );
        return;
      }
      const abandoned = waitForEvent<C2dFeedbackEvent>(
        hub.service,
        "c2dFeedback",
        (e) => e.messageId === "c2d-2" && e.outcome === "abandoned",
      );
      const redelivered = new Promise<Message>((resolve) => {
        let seen = 0;
        device.on("message", (message: Message) => {
          if (message.messageId !== "c2d-2") return;
          seen += 1;
          if (seen === 2) resolve(message);
          else void device.abandon(message);
        });
      });
      hub.service.sendCloudToDevice(under.hubHostName, deviceId, { body: "second", messageId: "c2d-2" });
      await abandoned;
      const again = await withTimeout(redelivered, "abandoned message delivered again");
      const rejected = waitForEvent<C2dFeedbackEvent>(
        hub.service,
        "c2dFeedback",
        (e) => e.messageId === "c2d-2" && e.outcome === "rejected",
      );
      await withTimeout(device.reject(again), "reject");
      await rejected;
      assert.deepEqual(
        feedback.map((e) => [e.messageId, e.outcome]),
        [
          ["c2d-1", "completed"],
          ["c2d-2", "abandoned"],
          ["c2d-2", "rejected"],
        ],
      );
    } finally {
      hub.service.off("c2dFeedback", onFeedback);
    }
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  });
}
