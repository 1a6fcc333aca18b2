// Symmetric key provisioning through the emulator with the unmodified Azure device SDK over AMQP, HTTPS and
// MQTT: individual enrollments, group-derived keys, and the refusals DPS makes (each followed by a good device).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { deriveDeviceKey } from "../../src/emulator/dps/index.js";
import {
  fetchDps,
  ID_SCOPE,
  isRefusal,
  newSymmetricKey,
  register,
  sdkEndpoint,
  startTestDps,
  symmetricKeyDevice,
  symmetricKeyEnrollment,
  TRANSPORTS,
  type TestDps,
} from "./dps-fixtures.js";

describe("DPS emulator, symmetric key attestation", () => {
  let env: TestDps;
  const groupKey = newSymmetricKey();

  before(async () => {
    env = await startTestDps({ linkedHubs: [{ hostName: "hub-1.emulator.local" }] });
    env.store.putEnrollmentGroup({
      enrollmentGroupId: "sk-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey } },
      initialTwin: { tags: { fleet: "north" }, properties: { desired: { interval: 30 } } },
    });
  });
  after(async () => {
    await env.dispose();
  });

  for (const transport of TRANSPORTS) {
    it(`provisions an individual enrollment over ${transport} and registers the device key in the hub`, async () => {
      const registrationId = `sk-ind-${transport}`;
      const key = newSymmetricKey();
      env.store.putIndividualEnrollment(
        symmetricKeyEnrollment(registrationId, key, { deviceId: `dev-${transport}` }),
      );
      const ca = env.pki.caCert;
      const result = await register(
        sdkEndpoint(env.dps, ca, transport),
        symmetricKeyDevice(registrationId, key),
      );
      assert.equal(result.status, "assigned");
      assert.equal(result.assignedHub, "hub-1.emulator.local");
      assert.equal(result.deviceId, `dev-${transport}`);
      assert.equal(result.substatus, "initialAssignment");
      const device = env.hub.getDevice("hub-1.emulator.local", `dev-${transport}`);
      assert.equal(device?.authentication.type, "sas");
      assert.equal(
        device.authentication.type === "sas" && device.authentication.symmetricKey.primaryKey,
        key,
      );
      const state = env.store.getRegistrationState(registrationId);
      assert.equal(state?.assignedHub, "hub-1.emulator.local");
      assert.equal(state?.status, "assigned");
    });

    it(`provisions a group member with its derived key over ${transport} and applies the initial twin`, async () => {
      const registrationId = `grp-member-${transport}`;
      const derived = deriveDeviceKey(groupKey, registrationId);
      assert.equal(
        derived,
        hmacSha256(Buffer.from(groupKey, "base64"), Buffer.from(registrationId)).toString("base64"),
      );
      const result = await register(
        sdkEndpoint(env.dps, env.pki.caCert, transport),
        symmetricKeyDevice(registrationId, derived),
      );
      assert.equal(result.status, "assigned");
      assert.deepEqual(result.symmetricKey, { enrollmentGroupId: "sk-group" });
      const twin = env.hub.getTwin("hub-1.emulator.local", registrationId);
      assert.deepEqual(twin, { tags: { fleet: "north" }, properties: { desired: { interval: 30 } } });
      const device = env.hub.getDevice("hub-1.emulator.local", registrationId);
      assert.equal(
        device?.authentication.type === "sas" && device.authentication.symmetricKey.primaryKey,
        derived,
      );
    });

    it(`refuses a wrong key, an unknown registration id and a disabled enrollment over ${transport}`, async () => {
      const registrationId = `sk-neg-${transport}`;
      const key = newSymmetricKey();
      env.store.putIndividualEnrollment(symmetricKeyEnrollment(registrationId, key));
      const endpoint = () => sdkEndpoint(env.dps, env.pki.caCert, transport);

      await assert.rejects(
        register(endpoint(), symmetricKeyDevice(registrationId, newSymmetricKey())),
        isRefusal,
      );
      await assert.rejects(
        register(endpoint(), symmetricKeyDevice(`nobody-${transport}`, newSymmetricKey())),
        isRefusal,
      );
      // The group key itself is not a device key.
      await assert.rejects(
        register(endpoint(), symmetricKeyDevice(`grp-x-${transport}`, groupKey)),
        isRefusal,
      );
      assert.equal(env.store.getRegistrationState(registrationId), undefined);

      const disabledId = `sk-disabled-${transport}`;
      env.store.putIndividualEnrollment(
        symmetricKeyEnrollment(disabledId, key, { provisioningStatus: "disabled" }),
      );
      const disabled = await register(endpoint(), symmetricKeyDevice(disabledId, key)).then(
        () => assert.fail("a disabled enrollment must not be assigned"),
        (error: Error & { result?: { status?: string } }) => error,
      );
      assert.equal(disabled.result?.status, "disabled");
      assert.equal(env.hub.getDevice("hub-1.emulator.local", disabledId), undefined);

      // The emulator still serves the next good device.
      const ok = await register(endpoint(), symmetricKeyDevice(registrationId, key));
      assert.equal(ok.status, "assigned");
    });
  }

  it("refuses expired tokens and tokens for another audience (HTTPS, where the token is sent as is)", async () => {
    const registrationId = "sk-token-checks";
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(symmetricKeyEnrollment(registrationId, key));
    const sign = (data: Buffer) => hmacSha256(Buffer.from(key, "base64"), data);
    const now = Math.floor(Date.now() / 1000);
    const expired = await buildSasToken(
      `${ID_SCOPE}/registrations/${registrationId}`,
      now - 10,
      sign,
      "registration",
    );
    const otherAudience = await buildSasToken(
      `${ID_SCOPE}/registrations/someone-else`,
      now + 600,
      sign,
      "registration",
    );
    const good = await buildSasToken(
      `${ID_SCOPE}/registrations/${registrationId}`,
      now + 600,
      sign,
      "registration",
    );
    const put = (token: string) =>
      fetchDps(env, `/${ID_SCOPE}/registrations/${registrationId}/register?api-version=2019-03-31`, {
        method: "PUT",
        headers: { authorization: token },
        body: JSON.stringify({ registrationId }),
      });
    const expiredAnswer = await put(expired);
    assert.equal(expiredAnswer.status, 401);
    assert.equal((expiredAnswer.body as { errorCode: number }).errorCode, 401002);
    assert.equal((await put(otherAudience)).status, 401);
    const accepted = await put(good);
    assert.equal(accepted.status, 202);
    assert.equal((accepted.body as { status: string }).status, "assigning");
    assert.equal(accepted.headers["retry-after"], "1");
  });
});
