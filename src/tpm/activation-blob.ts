// The "authenticationKey" DPS hands a TPM device: six TPM2B fields in a row (TSS.MSR Test_Azure_IoT_Provisioning,
// azure-iot-security-tpm _activateIdentityKey). Contents below are without their u16 size prefix.
import { TpmError } from "./errors.js";
import { TpmReader, TpmWriter } from "./marshal.js";

export interface ActivationBlob {
  /** TPM2B_ID_OBJECT contents: MakeCredential(EK, innerWrapKey, Name(SRK)).credentialBlob */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET contents: the seed, RSA-OAEP encrypted to the EK */
  encryptedSecret: Buffer;
  /** TPM2B_PRIVATE contents: the identity key duplicated to the SRK with an inner wrapper */
  duplicate: Buffer;
  /** TPM2B_ENCRYPTED_SECRET contents: the duplication seed, RSA-OAEP encrypted to the SRK */
  encryptedSeed: Buffer;
  /** TPM2B_PUBLIC contents (TPMT_PUBLIC) of the identity key */
  identityKeyPublic: Buffer;
  /** TPM2B_DATA contents: an encrypted URI the Node SDK ignores */
  encryptedUri: Buffer;
}

export function parseActivationBlob(blob: Buffer): ActivationBlob {
  try {
    const reader = new TpmReader(blob, "activation blob");
    return {
      credentialBlob: reader.sized(),
      encryptedSecret: reader.sized(),
      duplicate: reader.sized(),
      encryptedSeed: reader.sized(),
      identityKeyPublic: reader.sized(),
      encryptedUri: reader.sized(),
    };
  } catch (error) {
    throw new TpmError("TPM_INVALID_INPUT", `malformed activation blob (${blob.length} bytes)`, {
      cause: error,
    });
  }
}

export function serializeActivationBlob(parts: ActivationBlob): Buffer {
  return new TpmWriter()
    .sized(parts.credentialBlob)
    .sized(parts.encryptedSecret)
    .sized(parts.duplicate)
    .sized(parts.encryptedSeed)
    .sized(parts.identityKeyPublic)
    .sized(parts.encryptedUri)
    .toBuffer();
}
