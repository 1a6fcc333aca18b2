// Public API of the local DPS + IoT Hub emulator (no Node-RED here).
export {
  startEmulator,
  publicHostName,
  hostNameWithPort,
  type Emulator,
  type EmulatorEndpoints,
  type EmulatorOptions,
} from "./emulator.js";
export { ensureCertificates, type EmulatorCertificates, type EnsureCertificatesOptions } from "./certs.js";
export { startHub, HubServiceError } from "./hub/index.js";
export type { Hub, HubDeviceRecord, TelemetryRecord, TwinDocument } from "./hub/index.js";
export { startDps, EnrollmentStore, deriveDeviceKey } from "./dps/index.js";
export type { Dps, DpsOptions } from "./dps/index.js";
export { startServiceApi, ServiceApiError } from "./service-api/index.js";
export type { TelemetryJson } from "./service-api/index.js";
