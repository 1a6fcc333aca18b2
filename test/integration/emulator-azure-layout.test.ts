// Azure's layout on loopback: DPS's device API and the service API share 443 of one address (routed by path,
// as Azure's separate host names do), and the hub has an address of its own with its default AMQP port, so
// DPS assigns a plain host name — no port — and every client dials default ports, unpatched: the device SDK's
// DPS HTTPS transport, the hub device client over each transport (AMQP 5671, MQTT 8883, WebSocket and HTTPS on
// the hub's 443, which serves the service API too), and the service SDKs (in a child process trusting the CA).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, Message } from "azure-iot-device";
import { Amqp as HubAmqp } from "azure-iot-device-amqp";
import { Http as HubHttp } from "azure-iot-device-http";
import { Mqtt, MqttWs } from "azure-iot-device-mqtt";
import { ProvisioningDeviceClient, type RegistrationResult } from "azure-iot-provisioning-device";
import { Http } from "azure-iot-provisioning-device-http";
import { SymmetricKeySecurityClient } from "azure-iot-security-symmetric-key";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { withTimeout } from "../support/emulator-fixture.js";
import { runServiceSdk } from "../support/service-sdk-child.js";

/** Addresses no other test file uses: DPS + service API on one, the hub on the other. */
const HOST = "127.0.0.82";
const HUB_HOST = "127.0.0.83";
const { Http: HttpBase } = createRequire(require.resolve("azure-iot-provisioning-device-http"))(
  "azure-iot-http-base",
) as typeof import("azure-iot-http-base");

const SDK_SCRIPT = `
const { ProvisioningServiceClient } = require("azure-iot-provisioning-service");
const { Registry } = require("azure-iothub");
const arg = JSON.parse(process.env.SDK_ARG);
const out = (value) => { process.stdout.write(JSON.stringify(value) + "\\n"); process.exit(0); };
(async () => {
  if (arg.op === "enroll") {
    const client = ProvisioningServiceClient.fromConnectionString(process.env.DPS_CS);
    const { responseBody } = await client.createOrUpdateIndividualEnrollment(arg.enrollment);
    return out({ registrationId: responseBody.registrationId });
  }
  const { responseBody: twin } = await Registry.fromConnectionString(process.env.HUB_CS).getTwin(arg.deviceId);
  out({ connectionState: twin.connectionState, desired: twin.properties.desired });
})().catch((e) => out({ error: String(e && e.message || e) }));
`;

describe("Azure's layout: DPS and the service API on one 443, the hub on an address of its own", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let skipReason: string | undefined;
  let device: Client | undefined;
  let provisioned: { deviceId: string; key: string } | undefined;

  function runSdk(arg: Record<string, unknown>): Promise<Record<string, unknown>> {
    return runServiceSdk(SDK_SCRIPT, emulator, arg, String(arg.op));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-azure-layout-"));
    try {
      emulator = await startEmulator({
        dataDir: join(dir, "data"),
        host: HOST,
        httpsPort: 443,
        webPort: 443,
        hubHost: HUB_HOST,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // EADDRINUSE is a failure here, not a reason to skip: one port serving both APIs is what is tested.
      if (code === "EACCES" || code === "EADDRNOTAVAIL" || code === "EPERM") {
        skipReason = `cannot listen on ${HOST}:443 and ${HUB_HOST}:443/5671 here (${code})`;
      } else throw error;
    }
  });

  after(async () => {
    await device?.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("enrolls, provisions over DPS HTTPS, connects to a port-less hub name and reads the twin", async (t) => {
    if (!emulator) return t.skip(skipReason);
    assert.equal(emulator.endpoints.hub.hostName, HUB_HOST);
    assert.equal(emulator.endpoints.web, `https://${HOST}/`);
    const registrationId = "layout-device";
    const key = Buffer.alloc(32, 11).toString("base64");
    const enrolled = await runSdk({
      op: "enroll",
      enrollment: {
        registrationId,
        attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
        initialTwin: { properties: { desired: { layout: "azure" } } },
      },
    });
    assert.equal(enrolled.error, undefined, String(enrolled.error));

    // The unmodified HTTPS transport dials 443 of the provisioning host: the device API shares it.
    const httpBase = new HttpBase();
    httpBase.setOptions({ ca: emulator.caPem });
    const provisioning = ProvisioningDeviceClient.create(
      HOST,
      emulator.idScope,
      new Http(httpBase as never),
      new SymmetricKeySecurityClient(registrationId, key) as never,
    );
    const result = await withTimeout(
      new Promise<RegistrationResult>((resolvePromise, reject) => {
        void provisioning.register((error?: Error, registered?: RegistrationResult) => {
          if (error || !registered) reject(error ?? new Error("no registration result"));
          else resolvePromise(registered);
        });
      }),
      "DPS register over HTTPS",
    );
    assert.equal(result.assignedHub, HUB_HOST, "a plain host name, as Azure assigns");
    provisioned = { deviceId: result.deviceId, key };

    device = Client.fromConnectionString(
      `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${key}`,
      HubAmqp,
    );
    await device.setOptions({ ca: emulator.caPem });
    await withTimeout(device.open(), "hub open on 5671");

    const twin = await runSdk({ op: "twin", deviceId: registrationId });
    assert.equal(twin.error, undefined, String(twin.error));
    assert.equal(twin.connectionState, "Connected");
    assert.equal((twin.desired as { layout?: string }).layout, "azure");
  });

  it("serves MQTT on 8883 and, on the hub's 443, WebSocket, the device HTTPS API and the service API", async (t) => {
    if (!emulator) return t.skip(skipReason);
    assert.ok(provisioned, "the device of the test before");
    const { deviceId, key } = provisioned;
    assert.equal(emulator.hub.mqttPort, 8883);
    assert.equal(emulator.hub.httpsPort, 443);
    for (const [name, transport] of [
      ["Mqtt", Mqtt],
      ["MqttWs", MqttWs],
      ["Http", HubHttp],
    ] as const) {
      const client = Client.fromConnectionString(
        `HostName=${HUB_HOST};DeviceId=${deviceId};SharedAccessKey=${key}`,
        transport,
      );
      try {
        await withTimeout(
          client.setOptions({
            ca: emulator.caPem,
            // The Http transport's setOptions settles only when receiver options come with it (SDK behaviour).
            ...(transport === HubHttp ? { http: { receivePolicy: { interval: 1 } } } : {}),
          }),
          `${name} setOptions`,
        );
        await withTimeout(client.open(), `${name} open`);
        await withTimeout(client.sendEvent(new Message(`over ${name}`)), `${name} sendEvent`);
      } finally {
        await client.close().catch(() => undefined);
      }
      const [latest] = emulator.hub.service.recentTelemetry(HUB_HOST, deviceId, 1);
      assert.equal(latest?.body.toString(), `over ${name}`);
    }
    // The service API still answers on the same 443 of the hub's address.
    const twin = await runSdk({ op: "twin", deviceId });
    assert.equal(twin.error, undefined, String(twin.error));
    assert.equal((twin.desired as { layout?: string }).layout, "azure");
  });
});
