// Library API for plain scripts (no Node-RED needed).
export * from "./tpm/index.js";
export {
  startSwtpm,
  type SwtpmInstance,
  type SwtpmOptions,
  SwtpmNotInstalledError,
} from "./swtpm/launcher.js";
export {
  DeviceSession,
  ExponentialBackoff,
  JsonFileRegistrationStore,
  MemoryRegistrationStore,
  deriveDeviceKey,
  type DeviceSessionConfig,
  type DeviceSessionOptions,
  type SessionStateEvent,
  type SessionState,
  type TelemetryOptions,
  type AttestationConfig,
  type DpsConfig,
} from "./device/index.js";
export { startEmulator, ensureCertificates, type Emulator, type EmulatorOptions } from "./emulator/index.js";
