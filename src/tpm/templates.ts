// Key templates (TPMT_PUBLIC, Part 2 §12.2.4). They are byte for byte those of the Azure IoT SDK's TPM client
// (azure-iot-security-tpm), so that the EK, the SRK and therefore the registration id are the same whichever
// client created them. Note: this EK template has an empty `unique`, unlike the TCG default EK template.
import { TPM_ALG, TPMA_OBJECT } from "./constants.js";
import { TpmWriter } from "./marshal.js";

/** PolicySecret(TPM_RH_ENDORSEMENT): the EK's standard authorization policy (TCG EK Credential Profile). */
const EK_AUTH_POLICY = Buffer.from("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa", "hex");

function rsaStorageKey(objectAttributes: number, authPolicy: Buffer): Buffer {
  return new TpmWriter()
    .u16(TPM_ALG.RSA)
    .u16(TPM_ALG.SHA256) // nameAlg
    .u32(objectAttributes)
    .sized(authPolicy)
    .u16(TPM_ALG.AES) // TPMS_RSA_PARMS.symmetric: AES-128-CFB
    .u16(128)
    .u16(TPM_ALG.CFB)
    .u16(TPM_ALG.NULL) // scheme
    .u16(2048) // keyBits
    .u32(0) // exponent: default 65537
    .sized(Buffer.alloc(0)) // unique
    .toBuffer();
}

const {
  fixedTPM,
  fixedParent,
  sensitiveDataOrigin,
  adminWithPolicy,
  userWithAuth,
  noDA,
  restricted,
  decrypt,
} = TPMA_OBJECT;

export const ENDORSEMENT_KEY_TEMPLATE = rsaStorageKey(
  restricted | decrypt | fixedTPM | fixedParent | adminWithPolicy | sensitiveDataOrigin,
  EK_AUTH_POLICY,
);

export const STORAGE_ROOT_KEY_TEMPLATE = rsaStorageKey(
  restricted | decrypt | fixedTPM | fixedParent | noDA | userWithAuth | sensitiveDataOrigin,
  Buffer.alloc(0),
);
