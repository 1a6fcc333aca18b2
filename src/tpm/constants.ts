// TPM 2.0 constants used by the commands Azure DPS attestation needs.
// Source: TCG TPM 2.0 Library, Part 2 "Structures" (section numbers given per table).

/** TPM_ST, Part 2 §6.9 */
export const TPM_ST = {
  NO_SESSIONS: 0x8001,
  SESSIONS: 0x8002,
} as const;

/** TPM_CC, Part 2 §6.5.2 */
export const TPM_CC = {
  EvictControl: 0x00000120,
  CreatePrimary: 0x00000131,
  SequenceComplete: 0x0000013e,
  Startup: 0x00000144,
  ActivateCredential: 0x00000147,
  PolicySecret: 0x00000151,
  HMAC: 0x00000155,
  Import: 0x00000156,
  Load: 0x00000157,
  HMAC_Start: 0x0000015b,
  SequenceUpdate: 0x0000015c,
  FlushContext: 0x00000165,
  ReadPublic: 0x00000173,
  StartAuthSession: 0x00000176,
  GetCapability: 0x0000017a,
  GetRandom: 0x0000017b,
} as const;

export type TpmCommandName = keyof typeof TPM_CC;

/** TPM_ALG_ID, Part 2 §6.3 */
export const TPM_ALG = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  CFB: 0x0043,
} as const;

/** TPM_RH / TPM_RS, Part 2 §7.4 */
export const TPM_RH = {
  OWNER: 0x40000001,
  NULL: 0x40000007,
  PASSWORD_SESSION: 0x40000009,
  ENDORSEMENT: 0x4000000b,
} as const;

/** TPM_SE, Part 2 §6.11 */
export const TPM_SE_POLICY = 0x01;

/** TPM_SU, Part 2 §6.12 */
export const TPM_SU_CLEAR = 0x0000;

/** TPM_CAP and TPM_PT, Part 2 §6.12, §6.13 */
export const TPM_CAP_TPM_PROPERTIES = 0x00000006;
export const TPM_PT_INPUT_BUFFER = 0x00000100 + 13;
/** The fixed TPM properties (PT_FIXED group, Part 2 §6.13): who made the TPM and which firmware it runs. */
export const TPM_PT_FIXED = {
  FAMILY_INDICATOR: 0x00000100,
  LEVEL: 0x00000101,
  REVISION: 0x00000102,
  DAY_OF_YEAR: 0x00000103,
  YEAR: 0x00000104,
  MANUFACTURER: 0x00000105,
  VENDOR_STRING_1: 0x00000106,
  VENDOR_STRING_2: 0x00000107,
  VENDOR_STRING_3: 0x00000108,
  VENDOR_STRING_4: 0x00000109,
  VENDOR_TPM_TYPE: 0x0000010a,
  FIRMWARE_VERSION_1: 0x0000010b,
  FIRMWARE_VERSION_2: 0x0000010c,
} as const;

/** TPMA_OBJECT bits, Part 2 §8.3 */
export const TPMA_OBJECT = {
  fixedTPM: 0x00000002,
  fixedParent: 0x00000010,
  sensitiveDataOrigin: 0x00000020,
  userWithAuth: 0x00000040,
  adminWithPolicy: 0x00000080,
  noDA: 0x00000400,
  restricted: 0x00010000,
  decrypt: 0x00020000,
  sign: 0x00040000,
} as const;

/** TPMA_SESSION continueSession, Part 2 §8.4 */
export const TPMA_SESSION_CONTINUE = 0x01;

/** Response codes this package reacts to, Part 2 §6.6 */
export const TPM_RC = {
  SUCCESS: 0x000,
  INITIALIZE: 0x100,
  FAILURE: 0x101,
  /** Format-one "handle" error with no handle number: the object does not exist. */
  HANDLE: 0x08b,
} as const;

/**
 * Persistent handles used by the Azure IoT SDK's TPM client (azure-iot-security-tpm): we use the same,
 * so a device activated by either client keeps working with the other.
 */
export const PERSISTENT_HANDLE = {
  endorsementKey: 0x81010001,
  storageRootKey: 0x81000001,
  identityKey: 0x81000100,
} as const;
