// The emulated IoT Hub's MQTT endpoint (MQTT 3.1.1 over TLS, port 8883 on Azure) against the unmodified device
// SDK (azure-iot-device + azure-iot-device-mqtt): telemetry, twin, methods, C2D, refusals as CONNACK codes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client, Message } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { startHub, type ConnectionEvent, type Hub } from "../../src/emulator/hub/index.js";
import { HUB, hubWaits } from "../support/hub-fixture.js";
import { deviceSdkChecks } from "../support/hub-transport-suite.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const { waitForEvent, withTimeout } = hubWaits(15_000);

/** The SDK reports a CONNACK refusal as UnauthorizedError carrying mqtt.js's "Connection refused: ..." error. */
function refusedWith(text: string): (error: unknown) => boolean {
  return (error: unknown) => {
    const refusal = error as { name?: string; transportError?: { message?: string; code?: number } };
    assert.equal(refusal.name, "UnauthorizedError");
    assert.match(refusal.transportError?.message ?? "", new RegExp(`Connection refused: ${text}`));
    return true;
  };
}

describe("IoT Hub emulator over MQTT with the unmodified device SDK", () => {
  let pki: TestPki;
  let hub: Hub;

  before(async () => {
    pki = createTestPki();
    hub = await startHub({
      tls: { key: pki.serverKey, cert: pki.serverCert },
      hostNames: [HUB],
      mqttPort: 0,
    });
  });

  after(async () => {
    await hub.close();
  });

  deviceSdkChecks({
    transport: Mqtt,
    hub: () => hub,
    hubHostName: HUB,
    hostPart: () => `HostName=${HUB}:${hub.mqttPort}`,
    caCert: () => pki.caCert,
    c2d: "puback",
    twinAndMethods: true,
    assertRefused: refusedWith("Not authorized"),
  });

  it("accepts a token signed for the AMQP host name when the device reaches MQTT through GatewayHostName", async () => {
    const key = randomBytes(32).toString("base64");
    hub.registry.upsertDevice({
      hubHostName: HUB,
      deviceId: "via-gateway",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};GatewayHostName=${HUB}:${hub.mqttPort};DeviceId=via-gateway;SharedAccessKey=${key}`,
      Mqtt,
    );
    await client.setOptions({ ca: pki.caCert });
    try {
      await withTimeout(client.open(), "open");
      await withTimeout(client.sendEvent(new Message("via gateway")), "sendEvent");
      assert.equal(hub.service.recentTelemetry(HUB, "via-gateway")[0]?.body.toString(), "via gateway");
    } finally {
      await client.close();
    }
  });

  it("authenticates self-signed X.509 devices by thumbprint and refuses a certificate of another device", async () => {
    const certificate = pki.issueClientCert("mqtt-x509", { selfSigned: true });
    const other = pki.issueClientCert("mqtt-x509-other", { selfSigned: true });
    hub.registry.upsertDevice({
      hubHostName: HUB,
      deviceId: "mqtt-x509",
      status: "enabled",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: certificate.thumbprint } },
    });
    const open = async (cert: { cert: string; key: string }): Promise<Client> => {
      const client = Client.fromConnectionString(
        `HostName=${HUB}:${hub.mqttPort};DeviceId=mqtt-x509;x509=true`,
        Mqtt,
      );
      await client.setOptions({ cert: cert.cert, key: cert.key, ca: pki.caCert });
      return client;
    };
    const client = await open(certificate);
    try {
      await withTimeout(client.open(), "open");
      await withTimeout(client.sendEvent(new Message("x509")), "sendEvent");
      const [record] = hub.service.recentTelemetry(HUB, "mqtt-x509");
      assert.match(record?.systemProperties["iothub-connection-auth-method"] ?? "", /"type":"x509"/);
    } finally {
      await client.close();
    }
    const impostor = await open(other);
    await assert.rejects(withTimeout(impostor.open(), "open"), refusedWith("Not authorized"));
  });

  it("closes the MQTT connection of a device that is disabled and refuses it from then on", async () => {
    const key = randomBytes(32).toString("base64");
    const register = (status: "enabled" | "disabled"): void =>
      hub.registry.upsertDevice({
        hubHostName: HUB,
        deviceId: "mqtt-disabled",
        status,
        authentication: { type: "sas", symmetricKey: { primaryKey: key } },
      });
    register("enabled");
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.mqttPort};DeviceId=mqtt-disabled;SharedAccessKey=${key}`,
      Mqtt,
    );
    await client.setOptions({ ca: pki.caCert });
    try {
      await withTimeout(client.open(), "open");
      const disconnected = waitForEvent<ConnectionEvent>(
        hub.service,
        "connection",
        (event) => event.deviceId === "mqtt-disabled" && !event.connected,
      );
      register("disabled");
      await disconnected;
      assert.equal(hub.service.isConnected(HUB, "mqtt-disabled"), false);
      // The SDK reconnects to send; the disabled device is refused with CONNACK 5.
      await assert.rejects(
        withTimeout(client.sendEvent(new Message("while disabled")), "sendEvent"),
        refusedWith("Not authorized"),
      );
    } finally {
      await client.close().catch(() => undefined);
    }
  });

  describe("fault hooks", () => {
    const key = randomBytes(32).toString("base64");
    const open = async (deviceId: string): Promise<Client> => {
      hub.registry.upsertDevice({
        hubHostName: HUB,
        deviceId,
        status: "enabled",
        authentication: { type: "sas", symmetricKey: { primaryKey: key } },
      });
      const client = Client.fromConnectionString(
        `HostName=${HUB}:${hub.mqttPort};DeviceId=${deviceId};SharedAccessKey=${key}`,
        Mqtt,
      );
      await client.setOptions({ ca: pki.caCert });
      return client;
    };

    it("rejectNextTokens refuses the next CONNECT with CONNACK 5, then accepts again", async () => {
      const client = await open("fault-token");
      try {
        hub.faults.rejectNextTokens(1);
        await assert.rejects(withTimeout(client.open(), "open"), refusedWith("Not authorized"));
        await withTimeout(client.open(), "open again");
        assert.equal(hub.service.isConnected(HUB, "fault-token"), true);
      } finally {
        await client.close();
      }
    });

    it("throttleNext closes the connection instead of acknowledging; the SDK sends again and it is kept once", async () => {
      const client = await open("fault-throttle");
      try {
        await withTimeout(client.open(), "open");
        const dropped = waitForEvent<ConnectionEvent>(
          hub.service,
          "connection",
          (event) => event.deviceId === "fault-throttle" && !event.connected,
        );
        hub.faults.throttleNext(1);
        const sent = client.sendEvent(new Message("throttled once"));
        await dropped;
        await withTimeout(sent, "sendEvent after reconnecting");
        const bodies = hub.service.recentTelemetry(HUB, "fault-throttle").map((r) => r.body.toString());
        assert.deepEqual(bodies, ["throttled once"]);
      } finally {
        await client.close();
      }
    });

    it("dropConnection ends the device's MQTT connection", async () => {
      const client = await open("fault-drop");
      try {
        await withTimeout(client.open(), "open");
        const dropped = waitForEvent<ConnectionEvent>(
          hub.service,
          "connection",
          (event) => event.deviceId === "fault-drop" && !event.connected,
        );
        assert.equal(hub.faults.dropConnection(HUB, "fault-drop"), true);
        await dropped;
        assert.equal(hub.service.isConnected(HUB, "fault-drop"), false);
        assert.equal(hub.faults.dropConnection(HUB, "fault-drop"), false);
      } finally {
        await client.close();
      }
    });
  });
});
