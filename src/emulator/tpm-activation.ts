// The DPS side of TPM attestation: build the activation blob ("authenticationKey") that hands a device an
// HMAC identity key only its TPM can import. A software TPM2_MakeCredential (bound to the EK and the SRK's
// Name) wraps a fresh AES key; a software TPM2_Duplicate (to the SRK, inner wrapper with that AES key) carries
// the HMAC key. TPM 2.0 Part 1: §11.4.10.2 KDFa, §23.3.2 duplication, §24 credential protection.
import {
  createCipheriv,
  createHash,
  createHmac,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  constants,
  type KeyObject,
} from "node:crypto";
import { serializeActivationBlob } from "../tpm/activation-blob.js";
import { TPM_ALG, TPMA_OBJECT } from "../tpm/constants.js";
import { TpmReader, TpmWriter, sized } from "../tpm/marshal.js";

const HASH_NAMES: Record<number, string> = {
  [TPM_ALG.SHA1]: "sha1",
  [TPM_ALG.SHA256]: "sha256",
  [TPM_ALG.SHA384]: "sha384",
  [TPM_ALG.SHA512]: "sha512",
};

/** The parts of an RSA storage key's public area the protector math needs. */
export interface RsaStoragePublic {
  nameAlg: number;
  symmetricKeyBits: number;
  name: Buffer;
  key: KeyObject;
}

export class InvalidTpmPublicError extends Error {
  override readonly name = "InvalidTpmPublicError";
}

function hashName(alg: number): string {
  const name = HASH_NAMES[alg];
  if (!name) throw new InvalidTpmPublicError(`unsupported hash algorithm 0x${alg.toString(16)}`);
  return name;
}

/** Parses an RSA EK or SRK (TPM2B_PUBLIC, size prefix included, as devices send it to DPS). */
export function parseRsaStoragePublic(tpm2bPublic: Buffer): RsaStoragePublic {
  try {
    const area = new TpmReader(tpm2bPublic, "TPM2B_PUBLIC").sized();
    const reader = new TpmReader(area, "TPMT_PUBLIC");
    const type = reader.u16();
    const nameAlg = reader.u16();
    const attributes = reader.u32();
    reader.sized(); // authPolicy
    if (type !== TPM_ALG.RSA) throw new InvalidTpmPublicError("not an RSA key");
    if ((attributes & TPMA_OBJECT.restricted) === 0 || (attributes & TPMA_OBJECT.decrypt) === 0) {
      throw new InvalidTpmPublicError("not a restricted decryption (storage) key");
    }
    const symmetric = reader.u16();
    if (symmetric !== TPM_ALG.AES) throw new InvalidTpmPublicError("storage key without AES protection");
    const symmetricKeyBits = reader.u16();
    if (reader.u16() !== TPM_ALG.CFB) throw new InvalidTpmPublicError("storage key not in CFB mode");
    if (reader.u16() !== TPM_ALG.NULL) reader.u16(); // scheme (+ hash)
    reader.u16(); // keyBits
    const exponent = reader.u32() || 65537;
    const modulus = reader.sized();
    if (reader.remaining !== 0) throw new InvalidTpmPublicError("trailing bytes after the public area");
    const e = Buffer.alloc(4);
    e.writeUInt32BE(exponent);
    const key = createPublicKey({
      format: "jwk",
      key: {
        kty: "RSA",
        n: modulus.toString("base64url"),
        e: e.subarray(e.findIndex((b) => b !== 0)).toString("base64url"),
      },
    });
    return { nameAlg, symmetricKeyBits, name: objectName(nameAlg, area), key };
  } catch (error) {
    if (error instanceof InvalidTpmPublicError) throw error;
    throw new InvalidTpmPublicError(`malformed TPM public key: ${(error as Error).message}`);
  }
}

/** Name = nameAlg || H_nameAlg(TPMT_PUBLIC) */
export function objectName(nameAlg: number, tpmtPublic: Buffer): Buffer {
  return Buffer.concat([
    new TpmWriter().u16(nameAlg).toBuffer(),
    createHash(hashName(nameAlg)).update(tpmtPublic).digest(),
  ]);
}

/** KDFa: SP 800-108 counter mode with HMAC; the label gets a terminating zero. */
export function kdfa(
  hashAlg: number,
  key: Buffer,
  label: string,
  contextU: Buffer,
  contextV: Buffer,
  bits: number,
): Buffer {
  const parts: Buffer[] = [];
  let produced = 0;
  for (let counter = 1; produced * 8 < bits; counter++) {
    const block = createHmac(hashName(hashAlg), key)
      .update(new TpmWriter().u32(counter).toBuffer())
      .update(Buffer.from(`${label}\0`, "latin1"))
      .update(contextU)
      .update(contextV)
      .update(new TpmWriter().u32(bits).toBuffer())
      .digest();
    parts.push(block);
    produced += block.length;
  }
  return Buffer.concat(parts).subarray(0, Math.ceil(bits / 8));
}

/** AES-CFB with a zero IV, as TPM protected storage uses it. */
function aesCfbEncrypt(key: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv(`aes-${key.length * 8}-cfb`, key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

function digestSize(hashAlg: number): number {
  return createHash(hashName(hashAlg)).digest().length;
}

/** The seed, RSA-OAEP encrypted to the protector with the label "IDENTITY" or "DUPLICATE" (Part 1 Annex B.10.3). */
function encryptSeed(protector: RsaStoragePublic, label: string, seed: Buffer): Buffer {
  try {
    return publicEncrypt(
      {
        key: protector.key,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: hashName(protector.nameAlg),
        oaepLabel: Buffer.from(`${label}\0`, "latin1"),
      },
      seed,
    );
  } catch {
    // A key the device sends (the SRK) may be too small for OAEP: that is bad input, not a failure of DPS.
    throw new InvalidTpmPublicError(`the RSA key is too small to carry the ${label} seed`);
  }
}

/** Outer wrapper with a protector (the EK for a credential, the SRK for a duplicate): integrity || encrypted. */
function outerWrap(protector: RsaStoragePublic, seed: Buffer, name: Buffer, plaintext: Buffer): Buffer {
  const symmetricKey = kdfa(
    protector.nameAlg,
    seed,
    "STORAGE",
    name,
    Buffer.alloc(0),
    protector.symmetricKeyBits,
  );
  const encrypted = aesCfbEncrypt(symmetricKey, plaintext);
  const hmacKey = kdfa(
    protector.nameAlg,
    seed,
    "INTEGRITY",
    Buffer.alloc(0),
    Buffer.alloc(0),
    digestSize(protector.nameAlg) * 8,
  );
  const integrity = createHmac(hashName(protector.nameAlg), hmacKey).update(encrypted).update(name).digest();
  return Buffer.concat([sized(integrity), encrypted]);
}

// libtpms refuses HMAC keys longer than the SHA-256 block (TPM_RC_KEY_SIZE at Import). RFC 2104 makes
// HMAC(H(k), m) equal HMAC(k, m) for such keys, so the hashed key is imported instead.
const MAX_HMAC_KEY_BYTES = 64;

export interface ActivationOptions {
  /** Size of the inner wrapper's AES key: 16 (AES-128, as DPS) or 32. */
  innerKeyBytes?: 16 | 32;
  /** The URI the Node SDK ignores; DPS puts the hub URI there. */
  uri?: string;
}

/**
 * Builds the activation blob that gives the TPM with this EK and SRK the HMAC key `hmacKey`.
 * The device's signatures (TPM2_HMAC with the imported key) then equal HMAC-SHA256(hmacKey, data).
 */
export function buildActivationBlob(
  endorsementKey: Buffer,
  storageRootKey: Buffer,
  hmacKey: Buffer,
  options: ActivationOptions = {},
): Buffer {
  if (hmacKey.length === 0) throw new RangeError("the identity key must not be empty");
  const ek = parseRsaStoragePublic(endorsementKey);
  const srk = parseRsaStoragePublic(storageRootKey);
  const keyBits =
    hmacKey.length > MAX_HMAC_KEY_BYTES ? createHash("sha256").update(hmacKey).digest() : hmacKey;
  const innerKey = randomBytes(options.innerKeyBytes ?? 16);

  // Identity key: KEYEDHASH, HMAC-SHA256, sign|userWithAuth|noDA; duplicable (not fixedTPM/fixedParent).
  const seedValue = randomBytes(32);
  const identityPublic = new TpmWriter()
    .u16(TPM_ALG.KEYEDHASH)
    .u16(TPM_ALG.SHA256)
    .u32(TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.noDA)
    .sized(Buffer.alloc(0)) // authPolicy
    .u16(TPM_ALG.HMAC)
    .u16(TPM_ALG.SHA256)
    .sized(createHash("sha256").update(seedValue).update(keyBits).digest()) // unique = H(seedValue || key)
    .toBuffer();
  const identityName = objectName(TPM_ALG.SHA256, identityPublic);
  const sensitive = sized(
    new TpmWriter().u16(TPM_ALG.KEYEDHASH).sized(Buffer.alloc(0)).sized(seedValue).sized(keyBits).toBuffer(),
  );

  // MakeCredential: the inner key, for the TPM holding this EK, bound to the SRK's Name.
  const credentialSeed = randomBytes(digestSize(ek.nameAlg));
  const credentialBlob = outerWrap(ek, credentialSeed, srk.name, sized(innerKey));
  const encryptedSecret = encryptSeed(ek, "IDENTITY", credentialSeed);

  // Duplicate: inner wrapper (integrity + AES-CFB with the inner key), then the outer wrapper to the SRK.
  const innerIntegrity = createHash("sha256").update(sensitive).update(identityName).digest();
  const innerWrapped = aesCfbEncrypt(innerKey, Buffer.concat([sized(innerIntegrity), sensitive]));
  const duplicationSeed = randomBytes(digestSize(srk.nameAlg));
  const duplicate = outerWrap(srk, duplicationSeed, identityName, innerWrapped);
  const encryptedSeed = encryptSeed(srk, "DUPLICATE", duplicationSeed);

  return serializeActivationBlob({
    credentialBlob,
    encryptedSecret,
    duplicate,
    encryptedSeed,
    identityKeyPublic: identityPublic,
    encryptedUri: aesCfbEncrypt(innerKey, Buffer.from(options.uri ?? "", "utf8")),
  });
}
