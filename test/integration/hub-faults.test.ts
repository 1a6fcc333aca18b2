// Fault injection and limits of the emulated IoT Hub as the unmodified device SDK experiences them:
// dropped connections, detached links, throttled and delayed telemetry, oversize messages, C2D outcomes,
// method timeouts.
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client, Message, type Twin } from "azure-iot-device";
import { Amqp } from "azure-iot-device-amqp";
import { NoRetry } from "azure-iot-common";
import {
  startHub,
  type C2dFeedbackEvent,
  type ConnectionEvent,
  type Hub,
  type TwinSubscriptionEvent,
} from "../../src/emulator/hub/index.js";
import { HUB, hubWaits, registerSasDevice } from "../support/hub-fixture.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const { waitForEvent, withTimeout } = hubWaits(15_000);

function errorNamed(name: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof Error);
    assert.equal(error.name, name);
    return true;
  };
}

describe("IoT Hub emulator faults and limits", () => {
  let pki: TestPki;
  let hub: Hub;
  const key = randomBytes(32).toString("base64");
  const clients: Client[] = [];

  async function openClient(deviceId: string): Promise<Client> {
    registerSasDevice(hub, deviceId, key);
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=${deviceId};SharedAccessKey=${key}`,
      Amqp,
    );
    clients.push(client);
    await client.setOptions({ ca: pki.caCert });
    await withTimeout(client.open(), `open ${deviceId}`);
    return client;
  }

  before(async () => {
    pki = createTestPki();
    hub = await startHub({ tls: { key: pki.serverKey, cert: pki.serverCert }, hostNames: [HUB] });
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await hub.close();
  });

  it("dropConnection destroys the device's socket and the SDK reconnects on its next send", async () => {
    const client = await openClient("drop-1");
    await withTimeout(client.sendEvent(new Message("one")), "sendEvent");
    const lost = waitForEvent<ConnectionEvent>(
      hub.service,
      "connection",
      (e) => e.deviceId === "drop-1" && !e.connected,
    );
    assert.equal(hub.faults.dropConnection(HUB, "drop-1"), true);
    await lost;
    assert.equal(hub.service.isConnected(HUB, "drop-1"), false);
    await withTimeout(client.sendEvent(new Message("two")), "sendEvent after drop");
    assert.equal(hub.service.isConnected(HUB, "drop-1"), true);
    assert.deepEqual(
      hub.service.recentTelemetry(HUB, "drop-1").map((record) => record.body.toString()),
      ["one", "two"],
    );
    assert.equal(hub.faults.dropConnection(HUB, "never-connected"), false);
  });

  it("detachLink('telemetry') ends the telemetry link with an error and the next send still arrives", async () => {
    const client = await openClient("detach-1");
    await withTimeout(client.sendEvent(new Message("before")), "sendEvent");
    assert.equal(hub.faults.detachLink(HUB, "detach-1", "telemetry"), true);
    assert.equal(hub.faults.detachLink(HUB, "detach-1", "methods"), false);
    await withTimeout(client.sendEvent(new Message("after")), "sendEvent after detach");
    assert.equal(hub.service.recentTelemetry(HUB, "detach-1").at(-1)?.body.toString(), "after");
  });

  it("detachLink('twin') makes the SDK re-subscribe, and later desired patches still arrive", async () => {
    const client = await openClient("detach-twin");
    const twin: Twin = await withTimeout(client.getTwin(), "getTwin");
    const firstSubscription = waitForEvent<TwinSubscriptionEvent>(
      hub.service,
      "twinSubscription",
      (e) => e.deviceId === "detach-twin",
    );
    const received = new Promise<void>((resolve) => {
      twin.on("properties.desired", (delta: Record<string, unknown>) => {
        if (delta.afterFault === true) resolve();
      });
    });
    await firstSubscription;
    const resubscribed = waitForEvent<TwinSubscriptionEvent>(
      hub.service,
      "twinSubscription",
      (e) => e.deviceId === "detach-twin",
    );
    assert.equal(hub.faults.detachLink(HUB, "detach-twin", "twin"), true);
    await resubscribed;
    hub.service.updateTwin(HUB, "detach-twin", { properties: { desired: { afterFault: true } } });
    await withTimeout(received, "desired patch after re-subscribe");
  });

  it("throttleNext refuses telemetry as Azure rate-limits it, seen by the SDK as ThrottlingError", async () => {
    const client = await openClient("throttle-1");
    // The SDK's own policy would wait 10 s and send again; without it the refusal itself shows.
    client.setRetryPolicy(new NoRetry());
    hub.faults.throttleNext(1);
    await assert.rejects(
      withTimeout(client.sendEvent(new Message("refused")), "sendEvent"),
      errorNamed("ThrottlingError"),
    );
    await withTimeout(client.sendEvent(new Message("accepted")), "sendEvent");
    assert.deepEqual(
      hub.service.recentTelemetry(HUB, "throttle-1").map((record) => record.body.toString()),
      ["accepted"],
    );
  });

  it("exceedQuotaNext refuses telemetry with amqp:resource-limit-exceeded, seen as IotHubQuotaExceededError", async () => {
    const client = await openClient("quota-1");
    hub.faults.exceedQuotaNext(1);
    await assert.rejects(
      withTimeout(client.sendEvent(new Message("refused")), "sendEvent"),
      errorNamed("IotHubQuotaExceededError"),
    );
    await withTimeout(client.sendEvent(new Message("accepted")), "sendEvent");
    assert.deepEqual(
      hub.service.recentTelemetry(HUB, "quota-1").map((record) => record.body.toString()),
      ["accepted"],
    );
  });

  it("throttleTwinGetsNext answers the next twin GET 429, seen by the SDK as ThrottlingError; the one after is answered", async () => {
    const client = await openClient("twin-throttle-1");
    // The SDK's own policy would ask again after a back-off; without it the refusal itself shows.
    client.setRetryPolicy(new NoRetry());
    hub.faults.throttleTwinGetsNext(1);
    await assert.rejects(withTimeout(client.getTwin(), "getTwin"), (error: Error & { amqpError?: Error }) => {
      assert.match(error.message, /Twin reads throttled: too many requests/);
      assert.equal(error.amqpError?.name, "ThrottlingError");
      return true;
    });
    const twin: Twin = await withTimeout(client.getTwin(), "getTwin");
    assert.equal(typeof twin.properties.reported.$version, "number");
  });

  it("delayAcks holds back the accepted disposition by at least the delay", async () => {
    const client = await openClient("delay-1");
    const delayMs = 1200;
    hub.faults.delayAcks(delayMs);
    try {
      const started = Date.now();
      await withTimeout(client.sendEvent(new Message("slow")), "sendEvent");
      assert.ok(Date.now() - started >= delayMs - 50, "sendEvent resolved before the delayed disposition");
    } finally {
      hub.faults.delayAcks(0);
    }
  });

  it("rejects telemetry over 256 KB with MessageTooLargeError and accepts the next message on the same link", async () => {
    const client = await openClient("size-1");
    await assert.rejects(
      withTimeout(client.sendEvent(new Message(Buffer.alloc(257 * 1024, 1))), "sendEvent"),
      errorNamed("MessageTooLargeError"),
    );
    await withTimeout(client.sendEvent(new Message(Buffer.alloc(250 * 1024, 2))), "sendEvent");
    assert.equal(hub.service.recentTelemetry(HUB, "size-1").at(-1)?.body.length, 250 * 1024);
  });

  it("re-delivers an abandoned C2D message and reports each outcome", async () => {
    const client = await openClient("c2d-outcomes");
    const deliveries: Message[] = [];
    const outcomes: C2dFeedbackEvent["outcome"][] = [];
    hub.service.on("c2dFeedback", (event: C2dFeedbackEvent) => {
      if (event.deviceId === "c2d-outcomes") outcomes.push(event.outcome);
    });
    const rejected = waitForEvent<C2dFeedbackEvent>(
      hub.service,
      "c2dFeedback",
      (e) => e.deviceId === "c2d-outcomes" && e.outcome === "rejected",
    );
    client.on("message", (message: Message) => {
      deliveries.push(message);
      const settle = deliveries.length === 1 ? client.abandon(message) : client.reject(message);
      settle.catch(() => undefined);
    });
    hub.service.sendCloudToDevice(HUB, "c2d-outcomes", { body: Buffer.from([1, 2, 3]), messageId: "m-1" });
    await rejected;
    assert.deepEqual(outcomes, ["abandoned", "rejected"]);
    assert.deepEqual(
      deliveries.map((message) => message.messageId),
      ["m-1", "m-1"],
    );
  });

  it("refuses a 51st pending C2D message and a C2D body over 64 KB", () => {
    registerSasDevice(hub, "c2d-offline", key);
    for (let index = 0; index < 50; index += 1)
      hub.service.sendCloudToDevice(HUB, "c2d-offline", { body: `m${index}` });
    assert.throws(() => hub.service.sendCloudToDevice(HUB, "c2d-offline", { body: "one too many" }), {
      status: 403,
      errorCode: "DeviceMaximumQueueDepthExceeded",
    });
    assert.throws(
      () => hub.service.sendCloudToDevice(HUB, "c2d-offline", { body: Buffer.alloc(64 * 1024 + 1) }),
      {
        status: 413,
      },
    );
    assert.throws(() => hub.service.sendCloudToDevice(HUB, "nobody", { body: "x" }), { status: 404 });
  });

  it("times out a direct method the device never answers with 504", async () => {
    const client = await openClient("method-silent");
    client.onDeviceMethod("hang", () => undefined);
    await assert.rejects(
      hub.service.invokeMethod(HUB, "method-silent", {
        methodName: "hang",
        responseTimeoutInSeconds: 5,
        connectTimeoutInSeconds: 5,
      }),
      { name: "HubServiceError", status: 504, errorCode: "GatewayTimeout" },
    );
    await assert.rejects(
      hub.service.invokeMethod(HUB, "method-silent", { methodName: "hang", responseTimeoutInSeconds: 1 }),
      { status: 400 },
    );
  });

  it("keeps one AMQP connection per device client", () => {
    // detach-1 is left out: after a link error a telemetry-only SDK client runs its connection down and only
    // reconnects on its next operation (docs/hub-amqp-protocol.md §6.2).
    const connected = [
      "drop-1",
      "detach-twin",
      "throttle-1",
      "quota-1",
      "twin-throttle-1",
      "delay-1",
      "size-1",
      "c2d-outcomes",
      "method-silent",
    ];
    assert.deepEqual(
      connected.filter((deviceId) => !hub.service.isConnected(HUB, deviceId)),
      [],
    );
    assert.equal(hub.service.connectionCount(), connected.length);
  });
});
