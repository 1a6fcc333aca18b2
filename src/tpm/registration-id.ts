import { createHash } from "node:crypto";

const BASE32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 base32, lowercase, without padding. */
export function base32(data: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The registration id Azure derives for a TPM individual enrollment: base32(SHA-256(EK TPM2B_PUBLIC)),
 * lowercase, '=' stripped (as the Azure IoT SDKs compute it).
 */
export function registrationIdFromEndorsementKey(endorsementKey: Buffer): string {
  return base32(createHash("sha256").update(endorsementKey).digest());
}
