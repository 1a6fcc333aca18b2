// A TPM device (swtpm) on the emulated hub over MQTT: the key DPS issues in the activation blob stays in the
// TPM, which signs the SAS token the unmodified SDK sends as the CONNECT password.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Client, Message, type Twin } from "azure-iot-device";
import { Mqtt } from "azure-iot-device-mqtt";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import { buildActivationBlob } from "../../src/emulator/tpm-activation.js";
import { TpmAuthenticationProvider, TpmSecurityClient } from "../../src/tpm/index.js";
import { HUB, hubWaits } from "../support/hub-fixture.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const { withTimeout } = hubWaits(15_000);

describe("IoT Hub emulator over MQTT with a TPM-issued device key", () => {
  let pki: TestPki;
  let hub: Hub;
  let tpm: TestTpm;
  let security: TpmSecurityClient;

  before(async () => {
    pki = createTestPki();
    hub = await startHub({
      tls: { key: pki.serverKey, cert: pki.serverCert },
      hostNames: [HUB],
      mqttPort: 0,
    });
    tpm = await startTestTpm();
    security = new TpmSecurityClient(tpm.connection);
  });

  after(async () => {
    await security?.close();
    await tpm?.dispose();
    await hub?.close();
  });

  it("connects with the TPM-signed token, sends telemetry and reads its twin; another key is refused", async () => {
    const hubKey = randomBytes(32);
    await security.activateIdentityKey(
      buildActivationBlob(await security.getEndorsementKey(), await security.getStorageRootKey(), hubKey),
    );
    const register = (key: Buffer): void =>
      hub.registry.upsertDevice({
        hubHostName: HUB,
        deviceId: "tpm-mqtt",
        status: "enabled",
        authentication: { type: "sas", symmetricKey: { primaryKey: key.toString("base64") } },
      });
    register(hubKey);
    const connect = async (): Promise<Client> => {
      const provider = TpmAuthenticationProvider.fromTpmSecurityClient(
        "tpm-mqtt",
        `${HUB}:${hub.mqttPort}`,
        security,
      );
      const client = Client.fromAuthenticationProvider(provider, Mqtt);
      await client.setOptions({ ca: pki.caCert });
      return client;
    };
    const client = await connect();
    try {
      await withTimeout(client.open(), "open");
      await withTimeout(client.sendEvent(new Message("from the tpm device")), "sendEvent");
      const [record] = hub.service.recentTelemetry(HUB, "tpm-mqtt");
      assert.equal(record?.body.toString(), "from the tpm device");
      const twin: Twin = await withTimeout(client.getTwin(), "getTwin");
      assert.equal((twin.properties as unknown as { reported: { $version: number } }).reported.$version, 1);
    } finally {
      await client.close();
    }
    // The registry now holds another key: the TPM's signature no longer matches.
    register(randomBytes(32));
    const refused = await connect();
    await assert.rejects(withTimeout(refused.open(), "open"), (error: unknown) => {
      const refusal = error as { name?: string; transportError?: { message?: string } };
      assert.equal(refusal.name, "UnauthorizedError");
      assert.match(refusal.transportError?.message ?? "", /Connection refused: Not authorized/);
      return true;
    });
    await refused.close().catch(() => undefined);
  });
});
