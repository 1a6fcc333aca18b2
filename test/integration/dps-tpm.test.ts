// TPM attestation through the emulator: the unmodified azure-iot-provisioning-device (AMQP SASL TPM and
// HTTPS 401 challenge) with our TpmSecurityClient on a real swtpm. The key DPS issues in the final
// activation blob must be the device's IoT Hub key, and only the enrolled TPM may register.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { ProvisioningDeviceClient } from "azure-iot-provisioning-device";
import { Mqtt } from "azure-iot-provisioning-device-mqtt";
import { TpmSecurityClient } from "../../src/tpm/security-client.js";
import { hmacSha256 } from "../../src/common/sas.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import {
  fetchDps,
  ID_SCOPE,
  isRefusal,
  mqttConnack,
  register,
  sdkEndpoint,
  startTestDps,
  type TestDps,
  type TransportName,
} from "./dps-fixtures.js";

const HUB = "hub-tpm.emulator.local";

describe("DPS emulator, TPM attestation with swtpm", () => {
  let env: TestDps;
  let enrolledTpm: TestTpm;
  let otherTpm: TestTpm;
  const clients: TpmSecurityClient[] = [];
  let endorsementKey: Buffer;
  let storageRootKey: Buffer;
  let registrationId: string;

  const securityClient = (tpm: TestTpm, options: { registrationId?: string } = {}): TpmSecurityClient => {
    const client = new TpmSecurityClient(tpm.connection, options);
    clients.push(client);
    return client;
  };

  before(async () => {
    env = await startTestDps({ linkedHubs: [{ hostName: HUB }] });
    enrolledTpm = await startTestTpm();
    otherTpm = await startTestTpm();
    const client = securityClient(enrolledTpm);
    endorsementKey = await client.getEndorsementKey();
    storageRootKey = await client.getStorageRootKey();
    registrationId = await client.getRegistrationId();
    env.store.putIndividualEnrollment({
      registrationId,
      deviceId: "tpm-gateway",
      attestation: { type: "tpm", tpm: { endorsementKey: endorsementKey.toString("base64") } },
      initialTwin: { tags: { site: "lab" } },
    });
  });
  after(async () => {
    for (const client of clients) await client.close();
    await env?.dispose();
    await enrolledTpm?.dispose();
    await otherTpm?.dispose();
  });

  for (const transport of ["amqp", "https"] as TransportName[]) {
    it(`provisions the enrolled TPM over ${transport}; the TPM then signs with the hub key DPS issued`, async () => {
      const tpm = securityClient(enrolledTpm);
      const result = await register(sdkEndpoint(env.dps, env.pki.caCert, transport), tpm);
      assert.equal(result.status, "assigned");
      assert.equal(result.assignedHub, HUB);
      assert.equal(result.deviceId, "tpm-gateway");
      assert.equal(typeof (result.tpm as { authenticationKey?: unknown }).authenticationKey, "string");
      const device = env.hub.getDevice(HUB, "tpm-gateway");
      assert.ok(device?.authentication.type === "sas");
      const hubKey = Buffer.from(device.authentication.symmetricKey.primaryKey, "base64");
      const toSign = Buffer.from(`${HUB}%2Fdevices%2Ftpm-gateway\n${Math.floor(Date.now() / 1000) + 3600}`);
      assert.deepEqual(await tpm.signWithIdentity(toSign), hmacSha256(hubKey, toSign));
      assert.deepEqual(env.hub.getTwin(HUB, "tpm-gateway")?.tags, { site: "lab" });
    });

    it(`refuses the EK of another TPM and an unenrolled TPM over ${transport}, then serves the enrolled one`, async () => {
      const impostor = securityClient(otherTpm, { registrationId });
      await assert.rejects(register(sdkEndpoint(env.dps, env.pki.caCert, transport), impostor), isRefusal);
      const unenrolled = securityClient(otherTpm);
      await assert.rejects(register(sdkEndpoint(env.dps, env.pki.caCert, transport), unenrolled), isRefusal);
      const good = await register(
        sdkEndpoint(env.dps, env.pki.caCert, transport),
        securityClient(enrolledTpm),
      );
      assert.equal(good.status, "assigned");
    });
  }

  it("refuses TPM registrations over MQTT (the SDK cannot; a SAS-style attempt gets CONNACK not authorized)", async () => {
    const client = securityClient(enrolledTpm);
    assert.throws(
      () => ProvisioningDeviceClient.create(`127.0.0.1:${env.dps.ports.mqtt}`, ID_SCOPE, new Mqtt(), client),
      /does not support TPM/,
    );
    const username = `${ID_SCOPE}/registrations/${registrationId}/api-version=2019-03-31`;
    assert.equal(await mqttConnack(env.dps.ports.mqtt!, env.pki.caCert, registrationId, username), 5);
  });

  it("answers an unauthenticated HTTPS register with 401 + authenticationKey, and refuses a token not signed by the TPM", async () => {
    const path = `/${ID_SCOPE}/registrations/${registrationId}/register?api-version=2019-03-31`;
    const body = JSON.stringify({
      registrationId,
      tpm: {
        endorsementKey: endorsementKey.toString("base64"),
        storageRootKey: storageRootKey.toString("base64"),
      },
    });
    const challenge = await fetchDps(env, path, { method: "PUT", body });
    assert.equal(challenge.status, 401);
    const blob = Buffer.from((challenge.body as { authenticationKey: string }).authenticationKey, "base64");
    assert.ok(blob.length > 700, `activation blob of ${blob.length} bytes`);
    const forged = `SharedAccessSignature sr=${ID_SCOPE}%2Fregistrations%2F${registrationId}&sig=${encodeURIComponent(
      Buffer.alloc(32, 7).toString("base64"),
    )}&se=${Math.floor(Date.now() / 1000) + 600}&skn=registration`;
    const refused = await fetchDps(env, path, { method: "PUT", body, headers: { authorization: forged } });
    assert.equal(refused.status, 401);
    assert.equal((refused.body as { errorCode: number }).errorCode, 401002);
  });
});
