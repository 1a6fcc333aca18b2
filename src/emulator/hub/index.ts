// The emulated IoT Hub (device-facing AMQP over TLS) and its registry, service and fault-injection APIs.
export { startHub } from "./hub.js";
export { HubServiceError } from "./errors.js";
export type {
  C2dFeedbackEvent,
  CloudToDeviceMessage,
  ConnectionEvent,
  DeviceAuthentication,
  DeviceStatus,
  FaultLink,
  Hub,
  HubDeviceRecord,
  HubFaults,
  HubOptions,
  HubRegistry,
  HubService,
  MethodRequest,
  TelemetryRecord,
  TelemetrySystemProperties,
  TwinDocument,
  TwinProperties,
  TwinSeed,
  TwinSubscriptionEvent,
} from "./types.js";
