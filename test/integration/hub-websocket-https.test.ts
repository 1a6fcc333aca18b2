// The emulated hub's HTTPS port against the unmodified device SDK: MQTT over WebSocket (MqttWs), AMQP over
// WebSocket (AmqpWs) and the device HTTPS API (Http). The SDK's WebSocket and HTTPS transports always use
// port 443, so the hub listens on 443 of a loopback address of its own, with a certificate for it; the C2D lock
// and quota refusals of the device HTTPS API are checked with raw requests on a free port.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request } from "node:https";
import { Client, Message } from "azure-iot-device";
import { AmqpWs } from "azure-iot-device-amqp";
import { Http } from "azure-iot-device-http";
import { MqttWs } from "azure-iot-device-mqtt";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { startHub, type C2dFeedbackEvent, type Hub } from "../../src/emulator/hub/index.js";
import { hubWaits } from "../support/hub-fixture.js";
import { deviceSdkChecks } from "../support/hub-transport-suite.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const HOST = "127.0.0.163";
const { withTimeout } = hubWaits(15_000);

describe("IoT Hub emulator on port 443: WebSockets and the device HTTPS API", () => {
  const pki: TestPki = createTestPki();
  let hub: Hub | undefined;
  let skipReason: string | undefined;

  before(async () => {
    try {
      hub = await startHub({
        host: HOST,
        tls: pki.issueServerCertForIp(HOST),
        hostNames: [HOST],
        httpsPort: 443,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EADDRINUSE" && code !== "EADDRNOTAVAIL") throw error;
      skipReason = `cannot listen on ${HOST}:443 here (${code})`;
    }
  });

  after(async () => {
    await hub?.close();
  });

  const common = {
    hub: () => {
      if (!hub) throw new Error(skipReason);
      return hub;
    },
    hubHostName: HOST,
    hostPart: () => `HostName=${HOST}`,
    caCert: () => pki.caCert,
  };

  describe("MQTT over WebSocket (MqttWs)", () => {
    deviceSdkChecks({
      ...common,
      transport: MqttWs,
      c2d: "puback",
      twinAndMethods: true,
      assertRefused: (error) => {
        const refusal = error as { name?: string; transportError?: { message?: string } };
        assert.equal(refusal.name, "UnauthorizedError");
        assert.match(refusal.transportError?.message ?? "", /Connection refused: Not authorized/);
        return true;
      },
    });
  });

  describe("AMQP over WebSocket (AmqpWs)", () => {
    deviceSdkChecks({
      ...common,
      transport: AmqpWs,
      c2d: "explicit",
      twinAndMethods: true,
      assertRefused: (error) => {
        const refusal = error as { name?: string; amqpError?: { condition?: string } };
        assert.equal(refusal.name, "UnauthorizedError");
        return true;
      },
    });
  });

  describe("device HTTPS API (Http)", () => {
    deviceSdkChecks({
      ...common,
      transport: Http,
      // The Http transport's setOptions settles only when receiver options come with it (SDK behaviour).
      clientOptions: { http: { receivePolicy: { interval: 1 } } },
      c2dPropertyPrefix: "iothub-app-",
      c2d: "explicit",
      twinAndMethods: false,
      assertRefused: (error) => {
        const refusal = error as { name?: string; response?: { statusCode?: number } };
        assert.equal(refusal.name, "UnauthorizedError");
        assert.equal(refusal.response?.statusCode, 401);
        return true;
      },
    });
  });

  for (const [name, transport] of [
    ["MqttWs", MqttWs],
    ["AmqpWs", AmqpWs],
    ["Http", Http],
  ] as const) {
    it(`authenticates a self-signed X.509 device over ${name}`, async (t) => {
      if (!hub) return t.skip(skipReason);
      const deviceId = `x509-${name.toLowerCase()}`;
      const certificate = pki.issueClientCert(deviceId, { selfSigned: true });
      hub.registry.upsertDevice({
        hubHostName: HOST,
        deviceId,
        status: "enabled",
        authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: certificate.thumbprint } },
      });
      const client = Client.fromConnectionString(
        `HostName=${HOST};DeviceId=${deviceId};x509=true`,
        transport,
      );
      await withTimeout(
        client.setOptions({
          cert: certificate.cert,
          key: certificate.key,
          ca: pki.caCert,
          ...(transport === Http ? { http: { receivePolicy: { interval: 1 } } } : {}),
        }),
        "setOptions",
      );
      try {
        await withTimeout(client.open(), "open");
        await withTimeout(client.sendEvent(new Message(`x509 over ${name}`)), "sendEvent");
        const [record] = hub.service.recentTelemetry(HOST, deviceId);
        assert.equal(record?.body.toString(), `x509 over ${name}`);
        assert.match(record?.systemProperties["iothub-connection-auth-method"] ?? "", /"type":"x509"/);
      } finally {
        await client.close();
      }
      const impostor = pki.issueClientCert(deviceId, { selfSigned: true });
      const refused = Client.fromConnectionString(
        `HostName=${HOST};DeviceId=${deviceId};x509=true`,
        transport,
      );
      await withTimeout(
        refused.setOptions({
          cert: impostor.cert,
          key: impostor.key,
          ca: pki.caCert,
          ...(transport === Http ? { http: { receivePolicy: { interval: 1 } } } : {}),
        }),
        "setOptions",
      );
      await assert.rejects(
        withTimeout(
          refused.open().then(() => refused.sendEvent(new Message("impostor"))),
          "impostor",
        ),
        { name: "UnauthorizedError" },
      );
      await refused.close().catch(() => undefined);
      assert.equal(hub.service.recentTelemetry(HOST, deviceId).length, 1);
    });
  }

  it("applies the hub's fault hooks to the device HTTPS API: 401 for a rejected token, 429 when throttled", async (t) => {
    if (!hub) return t.skip(skipReason);
    const key = randomBytes(32).toString("base64");
    hub.registry.upsertDevice({
      hubHostName: HOST,
      deviceId: "https-faults",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    const client = Client.fromConnectionString(
      `HostName=${HOST};DeviceId=https-faults;SharedAccessKey=${key}`,
      Http,
    );
    await withTimeout(
      client.setOptions({ ca: pki.caCert, http: { receivePolicy: { interval: 1 } } }),
      "setOptions",
    );
    try {
      await withTimeout(client.open(), "open");
      hub.faults.rejectNextTokens(1);
      await assert.rejects(withTimeout(client.sendEvent(new Message("refused")), "sendEvent"), {
        name: "UnauthorizedError",
      });
      // IoT Hub answers throttling with 429; the SDK's Http transport passes it on without retrying.
      hub.faults.throttleNext(1);
      await assert.rejects(
        withTimeout(client.sendEvent(new Message("throttled")), "sendEvent"),
        (error: { response?: { statusCode?: number } }) => error.response?.statusCode === 429,
      );
      await withTimeout(client.sendEvent(new Message("accepted")), "sendEvent");
      const bodies = hub.service.recentTelemetry(HOST, "https-faults").map((r) => r.body.toString());
      assert.deepEqual(bodies, ["accepted"]);
    } finally {
      await client.close();
    }
  });

  it("answers a WebSocket request for another path with 404 at once", async (t) => {
    if (!hub) return t.skip(skipReason);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: HOST,
        port: 443,
        path: "/$iothub/other",
        ca: pki.caCert,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
          "Sec-WebSocket-Protocol": "mqtt",
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("upgrade", () => reject(new Error("upgraded on a path the hub does not serve")));
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 404);
  });
});

describe("device HTTPS API: C2D lock and quota refusals, as over AMQP", () => {
  const pki: TestPki = createTestPki();
  const LOCAL = "127.0.0.1";
  const deviceId = "https-lock";
  const key = randomBytes(32).toString("base64");
  let hub: Hub;

  before(async () => {
    hub = await startHub({
      host: LOCAL,
      tls: pki.issueServerCertForIp(LOCAL),
      hostNames: [LOCAL],
      httpsPort: 0,
      c2dLockTimeoutMs: 300,
    });
    hub.registry.upsertDevice({
      hubHostName: LOCAL,
      deviceId,
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
  });

  after(async () => {
    await hub?.close();
  });

  async function call(
    method: string,
    path: string,
    body?: string,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    const expiry = Math.floor(Date.now() / 1000) + 3600;
    const token = await buildSasToken(`${LOCAL}/devices/${deviceId}`, expiry, (data) =>
      hmacSha256(Buffer.from(key, "base64"), data),
    );
    return new Promise((resolve, reject) => {
      const req = request({
        host: LOCAL,
        port: hub.httpsPort,
        method,
        path: `/devices/${deviceId}/messages/${path}${path.includes("?") ? "&" : "?"}api-version=2021-04-12`,
        ca: pki.caCert,
        headers: { Authorization: token },
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  it("counts a message held past the hub's lock timeout as abandoned and voids its lock token", async () => {
    const outcomes: string[] = [];
    const abandoned = new Promise<void>((resolve) => {
      hub.service.on("c2dFeedback", (event: C2dFeedbackEvent) => {
        outcomes.push(event.outcome);
        if (event.outcome === "abandoned") resolve();
      });
    });
    hub.service.sendCloudToDevice(LOCAL, deviceId, { body: "locked", messageId: "lock-1" });
    const first = await call("GET", "deviceBound");
    assert.equal(first.status, 200);
    assert.equal(first.body, "locked");
    assert.equal(first.headers["iothub-deliverycount"], "1");
    const firstToken = String(first.headers.etag).replaceAll('"', "");
    await withTimeout(abandoned, "lock expiry");
    const late = await call("DELETE", `deviceBound/${encodeURIComponent(firstToken)}`);
    assert.equal(late.status, 412, "a settlement after the lock expired is refused");
    const again = await call("GET", "deviceBound");
    assert.equal(again.status, 200);
    assert.equal(again.headers["iothub-deliverycount"], "2");
    const token = String(again.headers.etag).replaceAll('"', "");
    assert.notEqual(token, firstToken);
    assert.equal((await call("DELETE", `deviceBound/${encodeURIComponent(token)}`)).status, 204);
    assert.deepEqual(outcomes, ["abandoned", "completed"]);
    assert.equal((await call("GET", "deviceBound")).status, 204, "nothing left in the queue");
  });

  it("answers 429 for an exceeded daily quota, then accepts again", async () => {
    hub.faults.exceedQuotaNext(1);
    assert.equal((await call("POST", "events", "over quota")).status, 429);
    assert.equal((await call("POST", "events", "accepted")).status, 204);
    const bodies = hub.service.recentTelemetry(LOCAL, deviceId).map((record) => record.body.toString());
    assert.deepEqual(bodies, ["accepted"]);
  });
});
