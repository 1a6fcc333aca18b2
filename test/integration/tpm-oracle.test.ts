// Our TPM client against the Azure SDK's own (azure-iot-security-tpm on tss.js), on the same swtpm state.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildActivationBlob } from "../../src/emulator/tpm-activation.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { sdkTpmOracle } from "../support/sdk-tpm-oracle.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();

describe("TpmSecurityClient agrees with the Azure SDK's TPM client", () => {
  let tpm: TestTpm;
  let ours: { endorsementKey: Buffer; storageRootKey: Buffer; registrationId: string };

  before(async () => {
    tpm = await startTestTpm();
    // Our client creates and persists EK and SRK on the blank TPM...
    const client = new TpmSecurityClient(tpm.connection);
    try {
      ours = {
        endorsementKey: await client.getEndorsementKey(),
        storageRootKey: await client.getStorageRootKey(),
        registrationId: await client.getRegistrationId(),
      };
    } finally {
      await client.close();
    }
  });

  after(async () => {
    await tpm?.dispose();
  });

  it("reads the same EK, SRK and registration id as the SDK", async () => {
    const sdk = sdkTpmOracle(tpm.connection);
    try {
      assert.equal(ours.endorsementKey.length, 316);
      assert.ok((await sdk.getEndorsementKey()).equals(ours.endorsementKey), "EK differs");
      assert.ok((await sdk.getStorageRootKey()).equals(ours.storageRootKey), "SRK differs");
      assert.equal(await sdk.getRegistrationId(), ours.registrationId);
      assert.match(ours.registrationId, /^[a-z2-7]{52}$/);
    } finally {
      sdk.close();
    }
  });

  it("creates the same EK and SRK as the SDK, each on its own blank TPM with the same seeds", async () => {
    // One blank TPM state (seeds made, no key yet) copied into two folders: the SDK creates its keys on one
    // copy and our client on the other, so each template is used to create, and the results must agree byte
    // for byte (the public area carries the template's attributes and policy; the key derives from it).
    const blankState = await mkdtemp(join(tmpdir(), "provisio-blank-tpm-"));
    const sdkState = await mkdtemp(join(tmpdir(), "provisio-blank-tpm-sdk-"));
    const ourState = await mkdtemp(join(tmpdir(), "provisio-blank-tpm-ours-"));
    try {
      const seeding = await startTestTpm(blankState);
      await seeding.dispose();
      await cp(blankState, sdkState, { recursive: true });
      await cp(blankState, ourState, { recursive: true });

      const sdkTpm = await startTestTpm(sdkState);
      let sdkKeys: { endorsementKey: Buffer; storageRootKey: Buffer };
      try {
        const sdk = sdkTpmOracle(sdkTpm.connection);
        try {
          sdkKeys = {
            endorsementKey: await sdk.getEndorsementKey(),
            storageRootKey: await sdk.getStorageRootKey(),
          };
        } finally {
          sdk.close();
        }
      } finally {
        await sdkTpm.dispose();
      }

      const ourTpm = await startTestTpm(ourState);
      try {
        const client = new TpmSecurityClient(ourTpm.connection);
        try {
          const endorsementKey = await client.getEndorsementKey();
          assert.equal(endorsementKey.toString("hex"), sdkKeys.endorsementKey.toString("hex"), "EK differs");
          const storageRootKey = await client.getStorageRootKey();
          assert.equal(storageRootKey.toString("hex"), sdkKeys.storageRootKey.toString("hex"), "SRK differs");
        } finally {
          await client.close();
        }
      } finally {
        await ourTpm.dispose();
      }
    } finally {
      for (const dir of [blankState, sdkState, ourState]) await rm(dir, { recursive: true, force: true });
    }
  });

  it("accepts an activation blob the SDK accepts, and both sign like HMAC-SHA256 with the issued key", async () => {
    const data40 = randomBytes(40);
    const data5000 = randomBytes(5000);

    const sdkKey = randomBytes(32);
    const sdk = sdkTpmOracle(tpm.connection);
    try {
      await sdk.activateIdentityKey(buildActivationBlob(ours.endorsementKey, ours.storageRootKey, sdkKey));
      assert.ok((await sdk.signWithIdentity(data40)).equals(hmac(sdkKey, data40)));
    } finally {
      sdk.close();
    }

    const client = new TpmSecurityClient(tpm.connection);
    try {
      // the identity key the SDK persisted is usable by our client as it is...
      assert.ok((await client.signWithIdentity(data40)).equals(hmac(sdkKey, data40)));
      // ...and our own activation replaces it
      const ourKey = randomBytes(32);
      await client.activateIdentityKey(buildActivationBlob(ours.endorsementKey, ours.storageRootKey, ourKey));
      assert.ok((await client.signWithIdentity(data40)).equals(hmac(ourKey, data40)), "40-byte signature");
      assert.ok(
        (await client.signWithIdentity(data5000)).equals(hmac(ourKey, data5000)),
        "5,000-byte signature",
      );
    } finally {
      await client.close();
    }
  });

  it("signs with a key longer than one HMAC block, as the emulator issues it hashed", async () => {
    const longKey = randomBytes(96);
    const client = new TpmSecurityClient(tpm.connection);
    try {
      await client.activateIdentityKey(
        buildActivationBlob(ours.endorsementKey, ours.storageRootKey, longKey),
      );
      const data = Buffer.from("0ne00000001/registrations/abc\n1900000000");
      assert.ok((await client.signWithIdentity(data)).equals(hmac(longKey, data)));
    } finally {
      await client.close();
    }
  });

  it("answers through Node-style callbacks as the SDK calls it", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    try {
      const endorsementKey = await new Promise<Buffer | undefined>((resolve, reject) =>
        client.getEndorsementKey((error, key) => (error ? reject(error) : resolve(key))),
      );
      assert.ok(endorsementKey?.equals(ours.endorsementKey));
      const signError = await new Promise<Error | null>((resolve) =>
        client.signWithIdentity(Buffer.alloc(0), (error) => resolve(error)),
      );
      assert.equal((signError as { code?: string } | null)?.code, "TPM_INVALID_INPUT");
    } finally {
      await client.close();
    }
  });
});
