// The DPS emulator's side of TPM attestation, without a TPM: which public keys it takes as an EK or SRK (an RSA
// storage key: restricted, decrypting, AES-CFB), the Name it computes for them, the KDFa it derives the
// wrapping keys with, and the parts of the activation blob it builds. test/integration/tpm-activation.test.ts
// has a real TPM (swtpm) import what it builds.
import assert from "node:assert/strict";
import { createHash, createHmac, generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  buildActivationBlob,
  InvalidTpmPublicError,
  kdfa,
  objectName,
  parseRsaStoragePublic,
} from "../../src/emulator/tpm-activation.js";
import { parseActivationBlob } from "../../src/tpm/activation-blob.js";
import { TPM_ALG, TPMA_OBJECT } from "../../src/tpm/constants.js";
import { TpmWriter } from "../../src/tpm/marshal.js";

const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const MODULUS = Buffer.from(publicKey.export({ format: "jwk" }).n!, "base64url");
const STORAGE = TPMA_OBJECT.restricted | TPMA_OBJECT.decrypt | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent;

interface AreaFields {
  type?: number;
  nameAlg?: number;
  attributes?: number;
  symmetric?: number;
  mode?: number;
  /** The RSA scheme, and its hash when it is not TPM_ALG_NULL. */
  scheme?: [number] | [number, number];
  exponent?: number;
  /** Bytes after the unique field, inside the area. */
  trailing?: Buffer;
  modulus?: Buffer;
}

/** TPMT_PUBLIC of an RSA key (TPM 2.0 Part 2 §12.2.4), by default a storage key like the EK and SRK. */
function publicArea(fields: AreaFields = {}): Buffer {
  const writer = new TpmWriter()
    .u16(fields.type ?? TPM_ALG.RSA)
    .u16(fields.nameAlg ?? TPM_ALG.SHA256)
    .u32(fields.attributes ?? STORAGE)
    .sized(Buffer.alloc(0))
    .u16(fields.symmetric ?? TPM_ALG.AES)
    .u16(128)
    .u16(fields.mode ?? TPM_ALG.CFB);
  for (const value of fields.scheme ?? [TPM_ALG.NULL]) writer.u16(value);
  writer
    .u16(2048)
    .u32(fields.exponent ?? 0)
    .sized(fields.modulus ?? MODULUS)
    .bytes(fields.trailing ?? Buffer.alloc(0));
  return writer.toBuffer();
}

/** As a device sends it: TPM2B_PUBLIC, the area with its size. */
const tpm2b = (area: Buffer): Buffer => new TpmWriter().sized(area).toBuffer();

function refusedWith(message: string | RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof InvalidTpmPublicError, `not an InvalidTpmPublicError: ${String(error)}`);
    assert.equal(error.name, "InvalidTpmPublicError");
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}

describe("TPM public keys the DPS emulator takes as EK or SRK", () => {
  it("reads the modulus, the exponent (0 meaning 65537), the AES key size and the name algorithm", () => {
    const parsed = parseRsaStoragePublic(tpm2b(publicArea()));
    const jwk = parsed.key.export({ format: "jwk" });
    assert.equal(jwk.n, MODULUS.toString("base64url"));
    assert.equal(jwk.e, "AQAB");
    assert.equal(parsed.symmetricKeyBits, 128);
    assert.equal(parsed.nameAlg, TPM_ALG.SHA256);
  });

  it("keeps every byte of an exponent whose first byte is not zero", () => {
    const jwk = parseRsaStoragePublic(tpm2b(publicArea({ exponent: 0x01000001 }))).key.export({
      format: "jwk",
    });
    assert.equal(Buffer.from(jwk.e!, "base64url").toString("hex"), "01000001");
  });

  it("names a key nameAlg || H(TPMT_PUBLIC), for each hash a TPM may use", () => {
    for (const [alg, hash] of [
      [TPM_ALG.SHA1, "sha1"],
      [TPM_ALG.SHA256, "sha256"],
      [TPM_ALG.SHA384, "sha384"],
      [TPM_ALG.SHA512, "sha512"],
    ] as const) {
      const area = publicArea({ nameAlg: alg });
      const expected = Buffer.concat([
        Buffer.from([alg >> 8, alg & 0xff]),
        createHash(hash).update(area).digest(),
      ]);
      assert.deepEqual(parseRsaStoragePublic(tpm2b(area)).name, expected, hash);
      assert.deepEqual(objectName(alg, area), expected, hash);
    }
  });

  it("reads past an RSA scheme that carries a hash", () => {
    const parsed = parseRsaStoragePublic(tpm2b(publicArea({ scheme: [0x0017, TPM_ALG.SHA256] })));
    assert.equal(parsed.key.export({ format: "jwk" }).n, MODULUS.toString("base64url"));
  });

  it("refuses a key that is not an RSA storage key, saying why", () => {
    const cases: [AreaFields, string][] = [
      [{ type: 0x0023 }, "not an RSA key"],
      [{ attributes: STORAGE & ~TPMA_OBJECT.restricted }, "not a restricted decryption (storage) key"],
      [{ attributes: STORAGE & ~TPMA_OBJECT.decrypt }, "not a restricted decryption (storage) key"],
      [{ symmetric: TPM_ALG.NULL }, "storage key without AES protection"],
      [{ mode: 0x0044 }, "storage key not in CFB mode"],
      [{ trailing: Buffer.from([0]) }, "trailing bytes after the public area"],
      [{ nameAlg: 0x0012 }, "unsupported hash algorithm 0x12"],
    ];
    for (const [fields, message] of cases) {
      assert.throws(() => parseRsaStoragePublic(tpm2b(publicArea(fields))), refusedWith(message), message);
    }
  });

  it("refuses truncated input as malformed, naming the part that is cut short", () => {
    assert.throws(
      () => parseRsaStoragePublic(Buffer.from([0x01, 0x00, 0x00])),
      refusedWith(/^malformed TPM public key: TPM2B_PUBLIC is truncated/),
    );
    const area = publicArea();
    assert.throws(
      () => parseRsaStoragePublic(tpm2b(area.subarray(0, 20))),
      refusedWith(/^malformed TPM public key: TPMT_PUBLIC is truncated/),
    );
  });
});

describe("KDFa (TPM 2.0 Part 1 §11.4.10.2)", () => {
  /** One block of SP 800-108 counter mode: HMAC(key, counter || label || 0 || contextU || contextV || bits). */
  function block(
    hash: string,
    key: Buffer,
    counter: number,
    label: string,
    u: Buffer,
    v: Buffer,
    bits: number,
  ) {
    const int = (value: number) =>
      Buffer.from([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
    return createHmac(hash, key)
      .update(Buffer.concat([int(counter), Buffer.from(label), Buffer.from([0]), u, v, int(bits)]))
      .digest();
  }

  it("counts the blocks up from 1 and cuts the output to the bits asked for", () => {
    const key = Buffer.from("a seed of some sort");
    const u = Buffer.from("context U");
    const v = Buffer.from("context V");
    // SHA-1 gives 160 bits a block: 256 bits take two blocks, 168 bits two blocks cut to 21 bytes.
    for (const bits of [256, 168, 160, 128]) {
      const blocks = Buffer.concat(
        [1, 2].map((counter) => block("sha1", key, counter, "STORAGE", u, v, bits)),
      );
      assert.deepEqual(
        kdfa(TPM_ALG.SHA1, key, "STORAGE", u, v, bits),
        blocks.subarray(0, Math.ceil(bits / 8)),
        `${bits} bits`,
      );
    }
    const sha256 = Buffer.concat(
      [1, 2, 3].map((counter) => block("sha256", key, counter, "INTEGRITY", u, v, 640)),
    );
    assert.deepEqual(kdfa(TPM_ALG.SHA256, key, "INTEGRITY", u, v, 640), sha256.subarray(0, 80));
  });
});

describe("activation blob", () => {
  const ek = tpm2b(publicArea());
  const srk = tpm2b(publicArea());

  it("refuses an empty identity key before looking at the keys", () => {
    assert.throws(
      () => buildActivationBlob(Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)),
      (error: unknown) =>
        error instanceof RangeError && error.message === "the identity key must not be empty",
    );
  });

  it("encrypts the URI with a stream cipher: as many bytes as its UTF-8, none without one", () => {
    const key = Buffer.alloc(32, 7);
    assert.equal(parseActivationBlob(buildActivationBlob(ek, srk, key)).encryptedUri.length, 0);
    const uri = "provisio-hub-ü.azure-devices.net";
    const withUri = parseActivationBlob(buildActivationBlob(ek, srk, key, { uri })).encryptedUri;
    assert.equal(withUri.length, Buffer.byteLength(uri, "utf8"));
    assert.notDeepEqual(withUri, Buffer.from(uri, "utf8"), "not in the clear");
  });

  it("refuses an EK or SRK too small to carry its seed as a bad key, naming the seed", () => {
    const { publicKey: small } = generateKeyPairSync("rsa", { modulusLength: 512 });
    const tiny = tpm2b(publicArea({ modulus: Buffer.from(small.export({ format: "jwk" }).n!, "base64url") }));
    assert.throws(
      () => buildActivationBlob(tiny, srk, Buffer.alloc(32)),
      refusedWith("the RSA key is too small to carry the IDENTITY seed"),
    );
    assert.throws(
      () => buildActivationBlob(ek, tiny, Buffer.alloc(32)),
      refusedWith("the RSA key is too small to carry the DUPLICATE seed"),
    );
  });

  it("refuses an EK or SRK that is not a storage key", () => {
    const signing = tpm2b(publicArea({ attributes: TPMA_OBJECT.sign }));
    assert.throws(() => buildActivationBlob(signing, srk, Buffer.alloc(32)), InvalidTpmPublicError);
    assert.throws(() => buildActivationBlob(ek, signing, Buffer.alloc(32)), InvalidTpmPublicError);
  });
});
