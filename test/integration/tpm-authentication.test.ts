// Our TPM client inside the Azure SDK: the SDK's TPM registration flow, and the hub SAS tokens
// TpmAuthenticationProvider hands azure-iot-device.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ProvisioningDeviceClient } from "azure-iot-provisioning-device";
import { Amqp as DeviceAmqp } from "azure-iot-device-amqp";
import { hmacSha256, parseSasToken, sasSignatureMatches } from "../../src/common/sas.js";
import { buildActivationBlob } from "../../src/emulator/tpm-activation.js";
import {
  TpmAuthenticationProvider,
  TpmSecurityClient,
  type TpmDeviceCredentials,
} from "../../src/tpm/index.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

type Cb<T> = (error: Error | null, value?: T) => void;

/**
 * A stand-in for the DPS transport the SDK's TpmRegistration drives. It plays DPS's part with the real
 * server-side crypto: challenge = activation blob for the EK/SRK it was given; the answer must be a SAS token
 * signed with the challenge key; the result carries a second blob with the hub key.
 */
class DpsTransportStandIn {
  endorsementKey: Buffer | undefined;
  storageRootKey: Buffer | undefined;
  readonly challengeKey = randomBytes(32);
  readonly hubKey = randomBytes(32);
  acceptedToken: string | undefined;

  setTpmInformation(endorsementKey: Buffer, storageRootKey: Buffer): void {
    this.endorsementKey = endorsementKey;
    this.storageRootKey = storageRootKey;
  }
  getAuthenticationChallenge(_request: unknown, callback: Cb<Buffer>): void {
    callback(null, buildActivationBlob(this.endorsementKey!, this.storageRootKey!, this.challengeKey));
  }
  respondToAuthenticationChallenge(
    request: { idScope: string; registrationId: string },
    sasToken: string,
    callback: Cb<void>,
  ): void {
    const fields = parseSasToken(sasToken);
    const ok =
      fields !== undefined &&
      fields.resource === `${request.idScope}/registrations/${request.registrationId}` &&
      fields.keyName === "registration" &&
      sasSignatureMatches(fields, this.challengeKey);
    if (ok) this.acceptedToken = sasToken;
    callback(ok ? null : new Error("401 unauthorized"));
  }
  registrationRequest(
    request: { registrationId: string },
    callback: (error: Error | null, result?: unknown) => void,
  ): void {
    callback(null, {
      status: "assigned",
      registrationState: {
        registrationId: request.registrationId,
        assignedHub: "local-hub.azure-devices.net",
        deviceId: request.registrationId,
        status: "assigned",
        tpm: {
          authenticationKey: buildActivationBlob(
            this.endorsementKey!,
            this.storageRootKey!,
            this.hubKey,
          ).toString("base64"),
        },
      },
    });
  }
  queryOperationStatus(_request: unknown, _operationId: string, callback: Cb<unknown>): void {
    callback(new Error("not expected"));
  }
  cancel(callback: Cb<void>): void {
    callback(null);
  }
  disconnect(callback: Cb<void>): void {
    callback(null);
  }
}

describe("TPM client inside the Azure SDK", () => {
  let tpm: TestTpm;
  let client: TpmSecurityClient;

  before(async () => {
    tpm = await startTestTpm();
    client = new TpmSecurityClient(tpm.connection);
  });

  after(async () => {
    await client?.close();
    await tpm?.dispose();
  });

  it("completes the SDK's own TPM registration and ends up holding the hub key", async () => {
    const transport = new DpsTransportStandIn();
    const registration = ProvisioningDeviceClient.create(
      "dps.local",
      "0ne00000001",
      transport as never,
      client,
    );
    const result = (await registration.register()) as unknown as {
      registrationState: { assignedHub: string; deviceId: string };
    };
    assert.equal(result.registrationState.assignedHub, "local-hub.azure-devices.net");
    assert.equal(result.registrationState.deviceId, await client.getRegistrationId());
    assert.ok(transport.acceptedToken, "DPS stand-in accepted the TPM-signed registration token");
    const data = Buffer.from("local-hub.azure-devices.net%2Fdevices%2Fx\n1900000000");
    assert.ok((await client.signWithIdentity(data)).equals(hmacSha256(transport.hubKey, data)));
  });

  it("hands azure-iot-device a hub SAS token that verifies with the issued key", async () => {
    const hubKey = randomBytes(32);
    await client.activateIdentityKey(
      buildActivationBlob(await client.getEndorsementKey(), await client.getStorageRootKey(), hubKey),
    );
    const provider = TpmAuthenticationProvider.fromTpmSecurityClient(
      "gateway-7",
      "local-hub.azure-devices.net",
      client,
    );
    // the SDK's AMQP transport takes the provider as it is (it subscribes to its token events)
    const transport = new DeviceAmqp(provider);
    assert.ok(transport);
    const before = Math.floor(Date.now() / 1000);
    const credentials = await provider.getDeviceCredentials();
    provider.stop();
    assert.equal(credentials.host, "local-hub.azure-devices.net");
    assert.equal(credentials.deviceId, "gateway-7");
    const fields = parseSasToken(credentials.sharedAccessSignature ?? "");
    assert.ok(fields);
    assert.equal(fields.resource, "local-hub.azure-devices.net/devices/gateway-7");
    assert.ok(sasSignatureMatches(fields, hubKey), "signature made with the issued key");
    assert.equal(sasSignatureMatches(fields, randomBytes(32)), false);
    assert.ok(fields.expiry >= before + 3600 && fields.expiry <= before + 3601 + 5, "one-hour lifetime");
  });

  it("renews the token before it expires", async () => {
    const hubKey = randomBytes(32);
    await client.activateIdentityKey(
      buildActivationBlob(await client.getEndorsementKey(), await client.getStorageRootKey(), hubKey),
    );
    const provider = new TpmAuthenticationProvider(
      { host: "local-hub.azure-devices.net", deviceId: "gateway-8" },
      client,
      {
        tokenValidTimeInSeconds: 4,
        tokenRenewalMarginInSeconds: 3,
      },
    );
    try {
      const first = await provider.getDeviceCredentials();
      const firstFields = parseSasToken(first.sharedAccessSignature ?? "")!;
      const renewed = await new Promise<TpmDeviceCredentials>((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error("no renewal within 10 s")), 10_000);
        provider.once("newTokenAvailable", (credentials: TpmDeviceCredentials) => {
          clearTimeout(guard);
          resolve(credentials);
        });
      });
      const renewedAt = Math.floor(Date.now() / 1000);
      const renewedFields = parseSasToken(renewed.sharedAccessSignature ?? "")!;
      assert.ok(renewedAt < firstFields.expiry, "the new token arrived before the old one expired");
      assert.ok(renewedFields.expiry > firstFields.expiry, "the new token lives longer");
      assert.ok(sasSignatureMatches(renewedFields, hubKey));
    } finally {
      provider.stop();
    }
  });

  it("refuses nonsensical token lifetimes", () => {
    const provider = new TpmAuthenticationProvider({ host: "h", deviceId: "d" }, client);
    assert.throws(() => provider.setTokenRenewalValues(60, 60), RangeError);
    assert.throws(() => provider.updateSharedAccessSignature("x"), /signs its own tokens/);
  });
});
