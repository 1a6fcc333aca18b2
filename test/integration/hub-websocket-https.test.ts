// The emulated hub's HTTPS port against the unmodified device SDK: MQTT over WebSocket (MqttWs), AMQP over
// WebSocket (AmqpWs) and the device HTTPS API (Http). The SDK's WebSocket and HTTPS transports always use
// port 443, so the hub listens on 443 of a loopback address of its own, with a certificate for it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { AmqpWs } from "azure-iot-device-amqp";
import { Http } from "azure-iot-device-http";
import { MqttWs } from "azure-iot-device-mqtt";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import { deviceSdkChecks } from "../support/hub-transport-suite.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const HOST = "127.0.0.163";

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
