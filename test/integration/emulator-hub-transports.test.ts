// The emulator's hub transports besides AMQP, as a user of the emulator reaches them: a device provisioned over
// DPS connects to the hub over MQTT with the connection string DPS leads to plus GatewayHostName.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, Message, type Twin } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { CliUsageError, parseCliArguments, readyLine } from "../../src/emulator/cli.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";

describe("emulator hub transports", () => {
  let dir: string;
  let emulator: Emulator;
  const groupKey = randomBytes(32).toString("base64");

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-hub-transports-"));
    emulator = await startEmulator({ dataDir: join(dir, "data") });
  });

  after(async () => {
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("announces the hub's MQTT and HTTPS endpoints in the ready line", () => {
    const ready = JSON.parse(readyLine(emulator)) as { hub: Record<string, string> };
    assert.equal(ready.hub.hostName, emulator.endpoints.hub.hostName);
    assert.equal(ready.hub.mqtt, `localhost:${emulator.hub.mqttPort}`);
    assert.equal(ready.hub.https, `localhost:${emulator.hub.httpsPort}`);
    assert.notEqual(emulator.hub.mqttPort, emulator.hub.port);
  });

  it("serves a DPS-provisioned device over MQTT through GatewayHostName", async () => {
    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: "mqtt-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
      initialTwin: { properties: { desired: { interval: 10 } } },
    });
    const { result, deviceKey } = await provisionGroupDevice(emulator, groupKey, "mqtt-device");
    const client = Client.fromConnectionString(
      `HostName=${result.assignedHub};GatewayHostName=${emulator.endpoints.hub.mqtt};` +
        `DeviceId=${result.deviceId};SharedAccessKey=${deviceKey}`,
      Mqtt,
    );
    await client.setOptions({ ca: emulator.caPem });
    try {
      await withTimeout(client.open(), "hub open over MQTT");
      await withTimeout(client.sendEvent(new Message("over mqtt")), "sendEvent");
      const [record] = emulator.hub.service.recentTelemetry(result.assignedHub, "mqtt-device");
      assert.equal(record?.body.toString(), "over mqtt");
      const twin: Twin = await withTimeout(client.getTwin(), "getTwin");
      assert.equal((twin.properties as unknown as { desired: { interval: number } }).desired.interval, 10);
    } finally {
      await client.close();
    }
  });

  it("takes the hub's MQTT and HTTPS ports from the command line", () => {
    const options = parseCliArguments([
      "--data-dir",
      dir,
      "--hub-mqtt-port",
      "8883",
      "--hub-https-port",
      "443",
    ]);
    assert.equal(options.hubMqttPort, 8883);
    assert.equal(options.hubHttpsPort, 443);
    assert.equal(parseCliArguments(["--data-dir", dir]).hubMqttPort, 0);
    assert.throws(() => parseCliArguments(["--data-dir", dir, "--hub-mqtt-port", "mqtt"]), CliUsageError);
    assert.throws(() => parseCliArguments(["--data-dir", dir, "--hub-https-port", "70000"]), CliUsageError);
  });
});
