// startEmulator end to end with the unmodified Azure device SDK: a symmetric-key device of an enrollment
// group (created through the service REST API) provisions over DPS, connects to the assigned hub over AMQP,
// sends telemetry that the REST API shows, gets a desired-property patch made through the REST API and
// answers a direct method invoked through it. The emulator's CA is trusted explicitly, never bypassed.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, Message, type Twin } from "azure-iot-device";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { hubClientFor, provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";

function connectionStringParts(cs: string): { host: string; keyName: string; key: string } {
  const parts = Object.fromEntries(
    cs.split(";").map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
  );
  return {
    host: parts.HostName ?? "",
    keyName: parts.SharedAccessKeyName ?? "",
    key: parts.SharedAccessKey ?? "",
  };
}

describe("emulator end to end with the device SDK", () => {
  let dir: string;
  let emulator: Emulator;
  let device: Client | undefined;
  const registrationId = "e2e-device-1";
  const groupKey = Buffer.alloc(32, 42).toString("base64");

  async function rest(
    service: "dpsService" | "hubService",
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: unknown }> {
    const cs = connectionStringParts(emulator.connectionStrings[service]);
    const token = await buildSasToken(
      cs.host,
      Math.floor(Date.now() / 1000) + 300,
      (data) => hmacSha256(Buffer.from(cs.key, "base64"), data),
      cs.keyName,
    );
    const text = body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, emulator.endpoints.web),
        {
          method,
          ca: emulator.caPem,
          headers: {
            Authorization: token,
            ...(text ? { "Content-Type": "application/json; charset=utf-8" } : {}),
            ...headers,
          },
        },
        (res) => {
          let data = "";
          res.on("data", (chunk: Buffer) => (data += chunk.toString()));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, json: data ? (JSON.parse(data) as unknown) : undefined }),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(text);
    });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-e2e-"));
    emulator = await startEmulator({ dataDir: join(dir, "data") });
  });

  after(async () => {
    await device?.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("provisions a group device, shows its telemetry, pushes a desired patch and invokes a method", async () => {
    const group = await rest("dpsService", "PUT", "/enrollmentGroups/e2e-group?api-version=2021-10-01", {
      enrollmentGroupId: "e2e-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
      initialTwin: { tags: { site: "lab" }, properties: { desired: { interval: 10 } } },
    });
    assert.equal(group.status, 200, JSON.stringify(group.json));

    // Provision over MQTT with the emulator CA given to the transport.
    const provisioned = await provisionGroupDevice(emulator, groupKey, registrationId);
    const { result } = provisioned;
    assert.equal(result.assignedHub, emulator.endpoints.hub.hostName);
    assert.equal(result.deviceId, registrationId);

    const registration = await rest(
      "dpsService",
      "GET",
      `/registrations/${registrationId}?api-version=2021-10-01`,
    );
    assert.equal(registration.status, 200);
    assert.equal((registration.json as { assignedHub: string }).assignedHub, emulator.endpoints.hub.hostName);

    device = await hubClientFor(emulator, provisioned);
    await withTimeout(device.open(), "hub open");

    const identity = await rest("hubService", "GET", `/devices/${registrationId}?api-version=2021-04-12`);
    assert.equal(identity.status, 200);
    assert.equal((identity.json as { connectionState: string }).connectionState, "Connected");

    // Telemetry, seen through the REST API.
    const message = new Message(JSON.stringify({ temperature: 21.5 }));
    message.properties.add("unit", "celsius");
    message.contentType = "application/json";
    message.contentEncoding = "utf-8";
    await withTimeout(device.sendEvent(message), "sendEvent");
    const telemetry = await rest("hubService", "GET", `/emulator/devices/${registrationId}/telemetry`);
    assert.equal(telemetry.status, 200);
    const records = telemetry.json as Array<{ body: unknown; properties: Record<string, string> }>;
    assert.equal(records.length, 1);
    assert.deepEqual(records[0]?.body, { temperature: 21.5 });
    assert.equal(records[0]?.properties.unit, "celsius");

    // Twin: the initial twin came from the enrollment group; a desired patch made over REST reaches the device.
    const twin: Twin = await withTimeout<Twin>(device.getTwin(), "getTwin");
    assert.equal((twin.properties.desired as { interval?: number }).interval, 10);
    const patchReceived = new Promise<Record<string, unknown>>((resolve) => {
      twin.on("properties.desired", (delta: Record<string, unknown>) => {
        if (delta.interval === 3) resolve(delta);
      });
    });
    const serviceTwin = await rest("hubService", "GET", `/twins/${registrationId}`);
    assert.equal((serviceTwin.json as { tags: { site: string } }).tags.site, "lab");
    const etag = (serviceTwin.json as { etag: string }).etag;
    const patched = await rest(
      "hubService",
      "PATCH",
      `/twins/${registrationId}?api-version=2021-04-12`,
      { properties: { desired: { interval: 3 } } },
      { "If-Match": `"${etag}"` },
    );
    assert.equal(patched.status, 200, JSON.stringify(patched.json));
    const delta = await withTimeout(patchReceived, "desired patch at the device");
    assert.equal(delta.interval, 3);

    // Direct method through the REST API, answered by the device.
    device.onDeviceMethod("ping", (methodRequest, response) => {
      const payload: unknown = methodRequest.payload;
      response.send(200, { pong: payload }, () => undefined);
    });
    const invoked = await rest(
      "hubService",
      "POST",
      `/twins/${registrationId}/methods?api-version=2021-04-12`,
      {
        methodName: "ping",
        payload: { n: 7 },
        responseTimeoutInSeconds: 10,
        // The SDK attaches its method links after onDeviceMethod returns: let the hub wait for them.
        connectTimeoutInSeconds: 10,
      },
    );
    assert.equal(invoked.status, 200, JSON.stringify(invoked.json));
    assert.deepEqual(invoked.json, { status: 200, payload: { pong: { n: 7 } } });
  });

  it("delivers a cloud-to-device message sent over REST and streams telemetry as server-sent events", async (t) => {
    if (!device) return t.skip("needs the device provisioned by the previous test");
    const connected = device;
    const received = new Promise<Message>((resolve) => {
      connected.on("message", (message: Message) => {
        connected.complete(message, () => undefined);
        resolve(message);
      });
    });
    const sent = await rest(
      "hubService",
      "POST",
      `/emulator/devices/${registrationId}/messages/devicebound`,
      Buffer.from("reboot at noon"),
      { "Content-Type": "text/plain", "iothub-messageid": "c2d-e2e-1", "iothub-app-priority": "high" },
    );
    assert.equal(sent.status, 204, JSON.stringify(sent.json));
    const message = await withTimeout(received, "C2D at the device");
    assert.equal(Buffer.from(message.getData() as Buffer).toString("utf8"), "reboot at noon");
    assert.equal(message.messageId, "c2d-e2e-1");
    assert.equal(message.properties.getValue("priority"), "high");

    // Open the event stream, then send telemetry: it arrives as a "telemetry" event.
    const cs = connectionStringParts(emulator.connectionStrings.hubService);
    const token = await buildSasToken(
      cs.host,
      Math.floor(Date.now() / 1000) + 300,
      (data) => hmacSha256(Buffer.from(cs.key, "base64"), data),
      cs.keyName,
    );
    const event = await withTimeout(
      new Promise<string>((resolve, reject) => {
        const req = request(
          new URL(`/emulator/devices/${registrationId}/telemetry/stream`, emulator.endpoints.web),
          { ca: emulator.caPem, headers: { Authorization: token } },
          (res) => {
            let text = "";
            let sentTelemetry = false;
            res.on("data", (chunk: Buffer) => {
              text += chunk.toString();
              if (!sentTelemetry && text.includes(": stream open")) {
                sentTelemetry = true;
                connected.sendEvent(new Message(JSON.stringify({ seq: 2 })), () => undefined);
              }
              const match = /event: telemetry\ndata: (.*)\n\n/.exec(text);
              if (match?.[1]) {
                req.destroy();
                resolve(match[1]);
              }
            });
            res.on("error", () => undefined);
          },
        );
        req.on("error", reject);
        req.end();
      }),
      "telemetry event",
    );
    assert.deepEqual((JSON.parse(event) as { body: unknown }).body, { seq: 2 });
  });
});
