// How the emulated IoT Hub authenticates devices: CBS put-token with SAS checks (key, expiry, audience, device
// status), token expiry, and X.509 client certificates; the unmodified device SDK on real TLS.
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client, Message } from "azure-iot-device";
import { Amqp } from "azure-iot-device-amqp";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { startHub, type ConnectionEvent, type Hub } from "../../src/emulator/hub/index.js";
import { HUB, hubWaits, registerSasDevice } from "../support/hub-fixture.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const { waitForEvent, withTimeout } = hubWaits(15_000);

function isUnauthorized(error: unknown): boolean {
  assert.ok(error instanceof Error);
  assert.equal(error.name, "UnauthorizedError");
  return true;
}

describe("IoT Hub emulator authentication", () => {
  let pki: TestPki;
  let hub: Hub;
  const key = randomBytes(32).toString("base64");
  const otherKey = randomBytes(32).toString("base64");
  const clients: Client[] = [];

  function sasDevice(deviceId: string, status: "enabled" | "disabled" = "enabled"): void {
    registerSasDevice(hub, deviceId, key, status);
  }

  function keyClient(deviceId: string, deviceKey = key): Client {
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=${deviceId};SharedAccessKey=${deviceKey}`,
      Amqp,
    );
    clients.push(client);
    return client;
  }

  async function sasClient(deviceId: string, audienceHost: string, expiry: number): Promise<Client> {
    const token = await buildSasToken(`${audienceHost}/devices/${deviceId}`, expiry, (data) =>
      hmacSha256(Buffer.from(key, "base64"), data),
    );
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=${deviceId};SharedAccessSignature=${token}`,
      Amqp,
    );
    clients.push(client);
    await client.setOptions({ ca: pki.caCert });
    return client;
  }

  async function openKeyClient(deviceId: string, deviceKey = key): Promise<Client> {
    const client = keyClient(deviceId, deviceKey);
    await client.setOptions({ ca: pki.caCert });
    await withTimeout(client.open(), `open ${deviceId}`);
    return client;
  }

  /** The hub is still serving: a registered device opens and its telemetry is accepted. */
  async function assertHubServes(): Promise<void> {
    const client = await openKeyClient("good");
    await withTimeout(client.sendEvent(new Message("still up")), "sendEvent");
    await client.close();
  }

  before(async () => {
    pki = createTestPki();
    hub = await startHub({
      tls: { key: pki.serverKey, cert: pki.serverCert, clientCa: [pki.caCert] },
      hostNames: [HUB, "provisio-hub-2.azure-devices.net"],
    });
    sasDevice("good");
    sasDevice("short-lived");
    sasDevice("disabled", "disabled");
    sasDevice("to-delete");
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    await hub.close();
  });

  it("refuses a token signed with the wrong key and keeps serving", async () => {
    const client = keyClient("good", otherKey);
    await client.setOptions({ ca: pki.caCert });
    await assert.rejects(withTimeout(client.open(), "open"), isUnauthorized);
    await assertHubServes();
  });

  it("refuses an expired token", async () => {
    const client = await sasClient("good", `${HUB}:${hub.port}`, Math.floor(Date.now() / 1000) - 60);
    await assert.rejects(withTimeout(client.open(), "open"), isUnauthorized);
    await assertHubServes();
  });

  it("refuses a token whose audience is another hub and serves a second hub name on the same listener", async () => {
    // GatewayHostName decouples the TCP target (this listener) from the signed audience (HostName), §1.1.
    const viaGateway = async (hubHostName: string): Promise<Client> => {
      const client = Client.fromConnectionString(
        `HostName=${hubHostName};GatewayHostName=${HUB}:${hub.port};DeviceId=good;SharedAccessKey=${key}`,
        Amqp,
      );
      clients.push(client);
      await client.setOptions({ ca: pki.caCert });
      return client;
    };
    const foreign = await viaGateway("someone-else.azure-devices.net");
    await assert.rejects(withTimeout(foreign.open(), "open"), isUnauthorized);
    // The same device id on the second served hub is a different device: unknown until registered there.
    const secondHub = "provisio-hub-2.azure-devices.net";
    const unregistered = await viaGateway(secondHub);
    await assert.rejects(withTimeout(unregistered.open(), "open"), isUnauthorized);
    hub.registry.upsertDevice({
      hubHostName: secondHub,
      deviceId: "good",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    const registered = await viaGateway(secondHub);
    await withTimeout(registered.open(), "open");
    await withTimeout(registered.sendEvent(new Message("second hub")), "sendEvent");
    assert.equal(hub.service.recentTelemetry(secondHub, "good").length, 1);
    assert.equal(
      hub.service.recentTelemetry(HUB, "good").every((r) => r.body.toString() !== "second hub"),
      true,
    );
    await registered.close();
    await assertHubServes();
  });

  it("refuses a disabled device and an unknown device", async () => {
    const disabled = keyClient("disabled");
    await disabled.setOptions({ ca: pki.caCert });
    await assert.rejects(withTimeout(disabled.open(), "open"), isUnauthorized);
    const unknown = keyClient("nobody");
    await unknown.setOptions({ ca: pki.caCert });
    await assert.rejects(withTimeout(unknown.open(), "open"), isUnauthorized);
    assert.equal(hub.service.isConnected(HUB, "disabled"), false);
    await assertHubServes();
  });

  it("answers the next put-token 401 when rejectNextTokens is set, then accepts again", async () => {
    hub.faults.rejectNextTokens(1);
    const refused = keyClient("good");
    await refused.setOptions({ ca: pki.caCert });
    await assert.rejects(withTimeout(refused.open(), "open"), isUnauthorized);
    await assertHubServes();
  });

  it("detaches the device's links when its token expires", async () => {
    const expiry = Math.floor(Date.now() / 1000) + 3;
    const client = await sasClient("short-lived", `${HUB}:${hub.port}`, expiry);
    await withTimeout(client.open(), "open");
    await withTimeout(client.sendEvent(new Message("before expiry")), "sendEvent");
    assert.equal(hub.service.isConnected(HUB, "short-lived"), true);
    const disconnected = waitForEvent<ConnectionEvent>(
      hub.service,
      "connection",
      (event) => event.deviceId === "short-lived" && !event.connected,
    );
    const clientDisconnect = withTimeout(
      new Promise<unknown>((resolve) => client.once("disconnect", resolve)),
      "client disconnect",
    );
    await disconnected;
    assert.ok(Date.now() >= expiry * 1000, "the hub revoked the device only once the token had expired");
    await clientDisconnect;
    assert.equal(hub.service.isConnected(HUB, "short-lived"), false);
  });

  it("disconnects a device when it is disabled or deleted", async () => {
    const client = await openKeyClient("to-delete");
    await withTimeout(client.sendEvent(new Message("hello")), "sendEvent");
    const disconnected = waitForEvent<ConnectionEvent>(
      hub.service,
      "connection",
      (event) => event.deviceId === "to-delete" && !event.connected,
    );
    hub.registry.setStatus(HUB, "to-delete", "disabled");
    await disconnected;
    await assert.rejects(withTimeout(client.sendEvent(new Message("refused")), "sendEvent"), isUnauthorized);
    hub.registry.setStatus(HUB, "to-delete", "enabled");
    const again = await openKeyClient("to-delete");
    const gone = waitForEvent<ConnectionEvent>(
      hub.service,
      "connection",
      (e) => e.deviceId === "to-delete" && !e.connected,
    );
    assert.equal(hub.registry.deleteDevice(HUB, "to-delete"), true);
    await gone;
    assert.equal(hub.registry.getDevice(HUB, "to-delete"), undefined);
    await again.close();
  });

  it("accepts an X.509 device by the thumbprint of its self-signed certificate, with no CBS", async () => {
    const certificate = pki.issueClientCert("x509-self", { selfSigned: true });
    hub.registry.upsertDevice({
      hubHostName: HUB,
      deviceId: "x509-self",
      status: "enabled",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: certificate.thumbprint } },
    });
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=x509-self;x509=true`,
      Amqp,
    );
    clients.push(client);
    await client.setOptions({ cert: certificate.cert, key: certificate.key, ca: pki.caCert });
    await withTimeout(client.open(), "open");
    await withTimeout(client.sendEvent(new Message("signed in by certificate")), "sendEvent");
    const [record] = hub.service.recentTelemetry(HUB, "x509-self");
    assert.equal(record?.body.toString(), "signed in by certificate");
    assert.match(record?.systemProperties["iothub-connection-auth-method"] ?? "", /"type":"x509"/);
    await client.close();
  });

  it("accepts a CA-signed certificate whose CN is the device id and refuses one issued to another id", async () => {
    for (const deviceId of ["x509-ca", "x509-ca-other"]) {
      hub.registry.upsertDevice({
        hubHostName: HUB,
        deviceId,
        status: "enabled",
        authentication: { type: "certificateAuthority" },
      });
    }
    const certificate = pki.issueClientCert("x509-ca");
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=x509-ca;x509=true`,
      Amqp,
    );
    clients.push(client);
    await client.setOptions({ cert: certificate.cert, key: certificate.key, ca: pki.caCert });
    await withTimeout(client.open(), "open");
    await withTimeout(client.sendEvent(new Message("chained")), "sendEvent");
    assert.equal(hub.service.recentTelemetry(HUB, "x509-ca").length, 1);
    await client.close();

    const impostor = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=x509-ca-other;x509=true`,
      Amqp,
    );
    clients.push(impostor);
    await impostor.setOptions({ cert: certificate.cert, key: certificate.key, ca: pki.caCert });
    await withTimeout(impostor.open(), "open");
    await assert.rejects(
      withTimeout(impostor.sendEvent(new Message("not mine")), "sendEvent"),
      isUnauthorized,
    );
    assert.equal(hub.service.recentTelemetry(HUB, "x509-ca-other").length, 0);
    await assertHubServes();
  });

  /** A CA-enrolled device presenting `certificate`: the hub opens the connection but refuses its telemetry. */
  async function assertCaDeviceRefused(
    deviceId: string,
    certificate: { cert: string; key: string },
    body: string,
  ): Promise<void> {
    hub.registry.upsertDevice({
      hubHostName: HUB,
      deviceId,
      status: "enabled",
      authentication: { type: "certificateAuthority" },
    });
    const client = Client.fromConnectionString(
      `HostName=${HUB}:${hub.port};DeviceId=${deviceId};x509=true`,
      Amqp,
    );
    clients.push(client);
    await client.setOptions({ cert: certificate.cert, key: certificate.key, ca: pki.caCert });
    await withTimeout(client.open(), "open");
    await assert.rejects(withTimeout(client.sendEvent(new Message(body)), "sendEvent"), isUnauthorized);
    assert.equal(hub.service.recentTelemetry(HUB, deviceId).length, 0);
    await client.close();
    await assertHubServes();
  }

  it("refuses, for a CA-enrolled device, a self-signed certificate whose CN is the device id", async () => {
    const deviceId = "x509-ca-self";
    await assertCaDeviceRefused(deviceId, pki.issueClientCert(deviceId, { selfSigned: true }), "not trusted");
  });

  it("refuses, for a CA-enrolled device, a leaf of another CA that carries the trusted CA's name", async () => {
    const deviceId = "x509-ca-rogue";
    // Same subject as the trusted CA, so the leaf's issuer name matches: only its signature does not.
    await assertCaDeviceRefused(deviceId, createTestPki().issueClientCert(deviceId), "forged chain");
  });
});
