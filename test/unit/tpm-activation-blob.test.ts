// The activation blob DPS hands a TPM device: six size-prefixed fields in a fixed order (pure logic).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  parseActivationBlob,
  serializeActivationBlob,
  type ActivationBlob,
} from "../../src/tpm/activation-blob.js";
import { TpmError } from "../../src/tpm/errors.js";

const parts: ActivationBlob = {
  credentialBlob: Buffer.from("c1c2c3", "hex"),
  encryptedSecret: Buffer.from("e1e2", "hex"),
  duplicate: Buffer.from("d1d2d3d4", "hex"),
  encryptedSeed: Buffer.from("5e", "hex"),
  identityKeyPublic: Buffer.from("0008000b", "hex"),
  encryptedUri: Buffer.alloc(0),
};

describe("TPM activation blob", () => {
  it("lays out the six fields in order, each with its u16 size", () => {
    assert.equal(
      serializeActivationBlob(parts).toString("hex"),
      "0003c1c2c3" + "0002e1e2" + "0004d1d2d3d4" + "00015e" + "00040008000b" + "0000",
    );
  });

  it("reads each field back from its place", () => {
    const parsed = parseActivationBlob(
      Buffer.from("0003c1c2c3" + "0002e1e2" + "0004d1d2d3d4" + "00015e" + "00040008000b" + "0001ff", "hex"),
    );
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(parsed).map(([name, value]) => [name, (value as Buffer).toString("hex")]),
      ),
      {
        credentialBlob: "c1c2c3",
        encryptedSecret: "e1e2",
        duplicate: "d1d2d3d4",
        encryptedSeed: "5e",
        identityKeyPublic: "0008000b",
        encryptedUri: "ff",
      },
    );
  });

  it("refuses a blob cut short as invalid input, with its length and the reader's error as cause", () => {
    const whole = serializeActivationBlob(parts);
    const cut = whole.subarray(0, whole.length - 1); // the last size prefix is incomplete
    assert.throws(
      () => parseActivationBlob(cut),
      (error: unknown) =>
        error instanceof TpmError &&
        error.code === "TPM_INVALID_INPUT" &&
        error.message === `malformed activation blob (${cut.length} bytes)` &&
        error.cause instanceof TpmError &&
        error.cause.code === "TPM_PROTOCOL" &&
        error.cause.message === "activation blob is truncated (wanted 2 bytes at 24)",
    );
  });
});
