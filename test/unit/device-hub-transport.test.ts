// The hub transport choice: what the configuration check accepts, and the port rule of the WebSocket
// transports, which is checked before any socket is opened.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { checkConfig } from "../../src/device/dependencies.js";
import { ConfigurationError } from "../../src/device/errors.js";
import { HubConnection } from "../../src/device/hub-connection.js";
import { HUB_TRANSPORTS, type DeviceSessionConfig, type HubTransportKind } from "../../src/device/config.js";

const key = Buffer.alloc(32, 3).toString("base64");
const base: DeviceSessionConfig = {
  dps: { idScope: "0ne00012345" },
  attestation: { kind: "symmetricKey", registrationId: "dev-1", key },
};

describe("hub transport", () => {
  it("accepts each of the four transports and no other", () => {
    assert.deepEqual(HUB_TRANSPORTS, ["amqp", "amqp-ws", "mqtt", "mqtt-ws"]);
    for (const transport of HUB_TRANSPORTS) {
      assert.doesNotThrow(() => checkConfig({ ...base, hub: { transport } }));
    }
    assert.throws(
      () => checkConfig({ ...base, hub: { transport: "https" as HubTransportKind } }),
      (error: Error) =>
        error instanceof ConfigurationError && /unknown hub transport "https"/.test(error.message),
    );
  });

  for (const transport of ["amqp-ws", "mqtt-ws"] as const) {
    it(`${transport} refuses a hub name with a port, naming the transport and never the key`, async () => {
      await assert.rejects(
        HubConnection.open(
          { assignedHub: "localhost:5671", deviceId: "dev-1" },
          { kind: "symmetricKey", key },
          { transport, connectTimeoutMs: 1_000, closeTimeoutMs: 1_000 },
        ),
        (error: Error) =>
          error instanceof ConfigurationError &&
          error.message.includes(`the ${transport} hub transport always uses port 443`) &&
          !error.message.includes(key),
      );
    });
  }
});
