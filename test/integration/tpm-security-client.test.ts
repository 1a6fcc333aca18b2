// TpmSecurityClient's own decisions, against a real swtpm behind a front end that records the commands and
// can answer chosen ones itself: input refused before the TPM is touched, what is read once and kept,
// signing data longer than one TPM input buffer, and TPM failures that must not be mistaken for a missing key.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, it } from "node:test";
import { buildActivationBlob } from "../../src/emulator/tpm-activation.js";
import { serializeActivationBlob } from "../../src/tpm/activation-blob.js";
import { CommandEngine } from "../../src/tpm/command-engine.js";
import { TpmCommands } from "../../src/tpm/commands.js";
import { PERSISTENT_HANDLE, TPM_CC, TPM_PT_INPUT_BUFFER } from "../../src/tpm/constants.js";
import { TpmError, TpmSecurityClient } from "../../src/tpm/index.js";
import {
  commandCodeOf,
  commandHandleOf,
  startTpmFaultFront,
  type TpmFaultFront,
} from "../support/tpm-fault-front.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();
const FAILURE = 0x101; // TPM_RC_FAILURE
const SIGNING = new Set<number>([
  TPM_CC.HMAC,
  TPM_CC.HMAC_Start,
  TPM_CC.SequenceUpdate,
  TPM_CC.SequenceComplete,
]);

/** A client whose TPM cannot be reached: anything that touches the TPM fails with TPM_TRANSPORT. */
const unreachable = (): TpmSecurityClient =>
  new TpmSecurityClient({ kind: "swtpm", host: "127.0.0.1", port: 1, ctrlPort: 1 });

const invalidInput = (message: string) => (error: unknown) =>
  error instanceof TpmError && error.code === "TPM_INVALID_INPUT" && error.message === message;

/** An activation blob whose identity key public area is `identityKeyPublic`, the rest empty. */
const blobWithIdentityPublic = (identityKeyPublic: Buffer): Buffer =>
  serializeActivationBlob({
    credentialBlob: Buffer.from([1]),
    encryptedSecret: Buffer.from([2]),
    duplicate: Buffer.from([3]),
    encryptedSeed: Buffer.from([4]),
    identityKeyPublic,
    encryptedUri: Buffer.alloc(0),
  });

/** TPMT_PUBLIC up to the scheme's hash: type, nameAlg SHA-256, no attributes, no policy, scheme, SHA-256. */
const publicArea = (type: number, scheme: number): Buffer =>
  Buffer.from(
    type.toString(16).padStart(4, "0") +
      "000b" +
      "00000000" +
      "0000" +
      scheme.toString(16).padStart(4, "0") +
      "000b",
    "hex",
  );

describe("TPM security client: input refused before the TPM is touched", () => {
  it("refuses an empty or non-buffer activation blob", async () => {
    const client = unreachable();
    await assert.rejects(
      client.activateIdentityKey(Buffer.alloc(0)),
      invalidInput("activation blob is empty"),
    );
    await assert.rejects(
      client.activateIdentityKey("blob" as never),
      invalidInput("activation blob is empty"),
    );
    await client.close();
  });

  it("refuses an identity key that is not an HMAC key, whichever half is wrong", async () => {
    const client = unreachable();
    for (const [type, scheme] of [
      [0x0001, 0x0005], // an RSA key with the HMAC scheme's value
      [0x0008, 0x0010], // a keyed-hash key without a scheme
    ] as const) {
      await assert.rejects(
        client.activateIdentityKey(blobWithIdentityPublic(publicArea(type, scheme))),
        (error: unknown) =>
          invalidInput("the identity key is not an HMAC key")(error) && (error as Error).cause === undefined,
        `type ${type}, scheme ${scheme}`,
      );
    }
    await client.close();
  });

  it("refuses a cut-short identity key public area, with the reader's error as cause", async () => {
    const client = unreachable();
    await assert.rejects(
      client.activateIdentityKey(blobWithIdentityPublic(Buffer.from("000800", "hex"))),
      (error: unknown) => {
        assert.ok(invalidInput("malformed identity key public area")(error));
        const cause = (error as Error).cause;
        assert.ok(cause instanceof TpmError && cause.code === "TPM_PROTOCOL");
        assert.equal(cause.message, "identity key public area is truncated (wanted 2 bytes at 2)");
        return true;
      },
    );
    await client.close();
  });

  it("refuses to sign nothing", async () => {
    const client = unreachable();
    await assert.rejects(client.signWithIdentity(Buffer.alloc(0)), invalidInput("nothing to sign"));
    await assert.rejects(client.signWithIdentity("text" as never), invalidInput("nothing to sign"));
    await client.close();
  });

  it("answers callbacks, with the error when there is one", async () => {
    const client = new TpmSecurityClient(
      { kind: "swtpm", host: "127.0.0.1", port: 1, ctrlPort: 1 },
      { registrationId: "fixed-id" },
    );
    const id = await new Promise((resolve, reject) =>
      client.getRegistrationId((error, value) => (error ? reject(error) : resolve(value))),
    );
    assert.equal(id, "fixed-id");
    const error = await new Promise<Error | null>((resolve) =>
      client.activateIdentityKey(Buffer.alloc(0), (err) => resolve(err)),
    );
    assert.ok(invalidInput("activation blob is empty")(error));
    await client.close();
  });
});

describe("TPM security client (swtpm behind a front end)", () => {
  let tpm: TestTpm;
  let front: TpmFaultFront;
  let inputBuffer: number;

  before(async () => {
    tpm = await startTestTpm();
    const engine = new CommandEngine(tpm.connection);
    inputBuffer = await engine.exclusive(() => new TpmCommands(engine).getProperty(TPM_PT_INPUT_BUFFER));
    await engine.close();
    front = await startTpmFaultFront(tpm.connection);
  });
  after(async () => {
    await front?.close();
    await tpm?.dispose();
  });
  beforeEach(() => {
    front.rule = undefined;
    front.commands.length = 0;
  });

  it("describes its TPM, and says so when nothing was activated yet", async () => {
    const client = new TpmSecurityClient(front.connection);
    try {
      assert.equal(client.description, `swtpm 127.0.0.1:${front.connection.port}`);
      await assert.rejects(
        client.signWithIdentity(Buffer.from("data")),
        (error: unknown) =>
          error instanceof TpmError &&
          error.code === "TPM_NOT_ACTIVATED" &&
          error.message === "no identity key in the TPM: activate one (provision) before signing",
      );
    } finally {
      await client.close();
    }
  });

  it("reports who made the TPM (swtpm: IBM, TPM 2.0)", async () => {
    const client = new TpmSecurityClient(front.connection);
    try {
      const info = await client.getTpmInfo();
      assert.equal(info.manufacturer, "IBM");
      assert.equal(info.specFamily, "2.0");
      assert.deepEqual(front.commands.slice(-1), [TPM_CC.GetCapability]);
    } finally {
      await client.close();
    }
  });

  it("does not take a failing TPM for a missing key: no EK is created over a ReadPublic failure", async () => {
    front.rule = (command) => (commandCodeOf(command) === TPM_CC.ReadPublic ? FAILURE : undefined);
    const client = new TpmSecurityClient(front.connection);
    try {
      await assert.rejects(
        client.getEndorsementKey(),
        (error: unknown) =>
          error instanceof TpmError && error.command === "ReadPublic" && error.responseCode === FAILURE,
      );
      assert.ok(!front.commands.includes(TPM_CC.CreatePrimary));
    } finally {
      await client.close();
    }
  });

  it("reads the EK and SRK once and keeps them", async () => {
    const client = new TpmSecurityClient(front.connection);
    try {
      const ek = await client.getEndorsementKey();
      front.commands.length = 0;
      assert.ok((await client.getEndorsementKey()).equals(ek));
      await client.getStorageRootKey();
      assert.deepEqual(front.commands, []);
    } finally {
      await client.close();
    }
  });

  describe("with an identity key", () => {
    const key = randomBytes(32);

    before(async () => {
      const client = new TpmSecurityClient(front.connection);
      try {
        await client.activateIdentityKey(
          buildActivationBlob(await client.getEndorsementKey(), await client.getStorageRootKey(), key),
        );
      } finally {
        await client.close();
      }
    });

    it("signs with a key activated by an earlier client (its hash is read from the TPM)", async () => {
      const client = new TpmSecurityClient(front.connection);
      try {
        const data = randomBytes(40);
        assert.ok((await client.signWithIdentity(data)).equals(hmac(key, data)));
      } finally {
        await client.close();
      }
    });

    it("signs what fits one input buffer in one TPM2_HMAC, and longer data in a sequence of full chunks", async () => {
      const client = new TpmSecurityClient(front.connection);
      try {
        const sizes: [number, number[]][] = [
          [inputBuffer, [TPM_CC.HMAC]],
          [2 * inputBuffer, [TPM_CC.HMAC_Start, TPM_CC.SequenceUpdate, TPM_CC.SequenceComplete]],
          [
            2 * inputBuffer + 1,
            [TPM_CC.HMAC_Start, TPM_CC.SequenceUpdate, TPM_CC.SequenceUpdate, TPM_CC.SequenceComplete],
          ],
        ];
        for (const [size, commands] of sizes) {
          const data = randomBytes(size);
          front.commands.length = 0;
          assert.ok((await client.signWithIdentity(data)).equals(hmac(key, data)), `${size} bytes`);
          assert.deepEqual(
            front.commands.filter((code) => SIGNING.has(code)),
            commands,
            `${size} bytes`,
          );
        }
      } finally {
        await client.close();
      }
    });

    it("flushes the HMAC sequence when a step fails, and reports the failure", async () => {
      front.rule = (command) => (commandCodeOf(command) === TPM_CC.SequenceUpdate ? FAILURE : undefined);
      const client = new TpmSecurityClient(front.connection);
      try {
        await assert.rejects(
          client.signWithIdentity(randomBytes(3 * inputBuffer)),
          (error: unknown) =>
            error instanceof TpmError && error.command === "SequenceUpdate" && error.responseCode === FAILURE,
        );
        assert.deepEqual(front.commands.slice(-2), [TPM_CC.SequenceUpdate, TPM_CC.FlushContext]);
      } finally {
        await client.close();
      }
    });

    it("does not take a failing TPM for a missing identity key when signing", async () => {
      front.rule = (command) =>
        commandCodeOf(command) === TPM_CC.ReadPublic &&
        commandHandleOf(command, 0) === PERSISTENT_HANDLE.identityKey
          ? FAILURE
          : undefined;
      const client = new TpmSecurityClient(front.connection);
      try {
        await assert.rejects(
          client.signWithIdentity(Buffer.from("data")),
          (error: unknown) =>
            error instanceof TpmError && error.code === "TPM_RESPONSE" && error.responseCode === FAILURE,
        );
      } finally {
        await client.close();
      }
    });

    it("fails an activation when the old identity key cannot be removed for another reason than its absence", async () => {
      front.rule = (command) =>
        commandCodeOf(command) === TPM_CC.EvictControl &&
        commandHandleOf(command, 1) === PERSISTENT_HANDLE.identityKey
          ? FAILURE
          : undefined;
      const client = new TpmSecurityClient(front.connection);
      try {
        const blob = buildActivationBlob(
          await client.getEndorsementKey(),
          await client.getStorageRootKey(),
          randomBytes(32),
        );
        await assert.rejects(
          client.activateIdentityKey(blob),
          (error: unknown) =>
            error instanceof TpmError && error.command === "EvictControl" && error.responseCode === FAILURE,
        );
        assert.deepEqual(front.commands.slice(-2), [TPM_CC.EvictControl, TPM_CC.FlushContext]);
      } finally {
        await client.close();
      }
    });
  });
});
