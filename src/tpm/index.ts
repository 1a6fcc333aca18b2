export { TpmSecurityClient, type TpmSecurityClientOptions } from "./security-client.js";
export {
  TpmAuthenticationProvider,
  type TpmDeviceCredentials,
  type TpmSigner,
  type TokenLifetime,
} from "./authentication-provider.js";
export { TpmError, type TpmErrorCode, describeResponseCode } from "./errors.js";
export { type TpmConnectionSpec, describeConnection } from "./connection-spec.js";
export { registrationIdFromEndorsementKey } from "./registration-id.js";
export { parseActivationBlob, serializeActivationBlob, type ActivationBlob } from "./activation-blob.js";
export { tpmInfoOf, type TpmInfo } from "./tpm-info.js";
