// The activation blob the DPS emulator builds, imported by a real TPM (swtpm) through our client: whatever the
// length of the identity key DPS issues, the TPM then signs exactly like HMAC-SHA256 with that key.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { buildActivationBlob } from "../../src/emulator/tpm-activation.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();

describe("activation blobs imported by a TPM", () => {
  let tpm: TestTpm;
  let client: TpmSecurityClient;
  let endorsementKey: Buffer;
  let storageRootKey: Buffer;

  before(async () => {
    tpm = await startTestTpm();
    client = new TpmSecurityClient(tpm.connection);
    endorsementKey = await client.getEndorsementKey();
    storageRootKey = await client.getStorageRootKey();
  });

  after(async () => {
    await client?.close();
    await tpm?.dispose();
  });

  // 64 bytes is one SHA-256 block, used as it is; a longer key is imported hashed (RFC 2104 makes that sign
  // the same), which only holds when a key of exactly one block is left alone.
  for (const length of [1, 32, 64, 65, 128]) {
    it(`signs like HMAC-SHA256 with an issued key of ${length} bytes`, async () => {
      const key = randomBytes(length);
      await client.activateIdentityKey(buildActivationBlob(endorsementKey, storageRootKey, key));
      const data = randomBytes(48);
      assert.deepEqual(await client.signWithIdentity(data), hmac(key, data));
    });
  }

  it("takes an AES-256 inner wrapper and a URI just the same", async () => {
    const key = randomBytes(32);
    await client.activateIdentityKey(
      buildActivationBlob(endorsementKey, storageRootKey, key, {
        innerKeyBytes: 32,
        uri: "provisio-hub-1.azure-devices.net",
      }),
    );
    const data = randomBytes(16);
    assert.deepEqual(await client.signWithIdentity(data), hmac(key, data));
  });
});
