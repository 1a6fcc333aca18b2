// Library API for plain scripts (no Node-RED needed): the device session and the TPM client. The local DPS +
// IoT Hub emulator is a separate entry point, "@provisio/node-red-azure-iot/emulator" (src/emulator/index.ts),
// so that loading the device side never loads the emulator's servers (rhea's server side, node-forge,
// mqtt-packet).
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
  MethodCallNotWaitingError,
  CloudMessageNotPendingError,
  type MethodCall,
  type MethodRegistration,
  type CloudMessage,
  type C2dOutcome,
} from "./device/index.js";
