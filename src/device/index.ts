// Framework-free device session: usable from a plain script or a Node-RED config node.
//
//   const session = new DeviceSession({
//     dps: { idScope: "0ne00012345", transport: "amqp" },
//     attestation: { kind: "symmetricKey", registrationId: "gateway-1", key: process.env.DEVICE_KEY! },
//   });
//   session.on("state", (s) => console.log(s.state, s.deviceId ?? "", s.error ?? ""));
//   session.on("twin", (desired) => console.log("desired", desired));
//   session.start();
//   await session.sendTelemetry({ temperature: 21.5 }, { properties: { unit: "C" } });
//   const version = await session.reportProperties({ firmware: "1.0.0" });
//   await session.close();
export {
  DeviceSession,
  type SessionStateEvent,
  type TelemetryDroppedEvent,
  type DeviceSessionEvents,
} from "./session.js";
export type {
  DeviceSessionConfig,
  DeviceSessionOptions,
  DpsConfig,
  DpsTransportKind,
  HubConfig,
  HubTransportKind,
  DirectHubIdentity,
  AttestationConfig,
} from "./config.js";
export { DEFAULT_GLOBAL_ENDPOINT, HUB_TRANSPORTS } from "./config.js";
export {
  parseDeviceConnectionString,
  ConnectionStringError,
  type ConnectionStringProblem,
  type DeviceConnectionString,
} from "./connection-string.js";
export { ProxyError, proxyFor, type ProxyConfig, type ResolvedProxy } from "./proxy.js";
export {
  SESSION_STATES,
  SESSION_EVENTS,
  TRANSITIONS,
  nextState,
  type SessionState,
  type SessionEventType,
} from "./states.js";
export { Lifecycle, type Phase, type SessionEvent, type LifecycleHooks } from "./lifecycle.js";
export { DefaultRetryPolicy, RetryCounter, type RetryPolicy, type RetryAction } from "./retry-policy.js";
export {
  TelemetryPump,
  type TelemetryPause,
  type PauseReason,
  type TelemetryOutcome,
} from "./telemetry-pump.js";
export { TwinSync } from "./twin-sync.js";
export {
  MethodDispatcher,
  MethodCallNotWaitingError,
  MethodStatus,
  METHOD_PAYLOAD_LIMIT_BYTES,
  DEFAULT_METHOD_RESPONSE_TIMEOUT_MS,
  validateMethodAnswer,
  type MethodCall,
  type MethodHandler,
  type MethodRegistration,
  type IncomingMethodCall,
} from "./method-dispatcher.js";
export {
  C2dInbox,
  CloudMessageNotPendingError,
  C2D_OUTCOMES,
  DEFAULT_C2D_HOLD_MS,
  type C2dOutcome,
  type CloudMessage,
  type CloudMessageHandler,
  type IncomingCloudMessage,
} from "./c2d-inbox.js";
export { withDeadline, sleep } from "./deadline.js";
export { ExponentialBackoff, type BackoffPolicy, type ExponentialBackoffOptions } from "./backoff.js";
export {
  isRetryable,
  isIdentityRejected,
  isThrottled,
  isQuotaExceeded,
  isConfigurationProblem,
  isMessageRefused,
  describeError,
  redact,
} from "./retryable.js";
export {
  Limits,
  validateIdScope,
  validateRegistrationId,
  validateTelemetry,
  validateMessageId,
  validateTwinKey,
  validateTwinPatch,
  twinDepth,
  twinSize,
} from "./validation.js";
export { DEFAULT_BOUNDS, type OverflowPolicy, type OutboxBounds } from "./outbox.js";
export { OutboxLog, type OutboxLogOptions } from "./outbox-log.js";
export {
  toHubMessage,
  COMPONENT_PROPERTY,
  type TelemetryOptions,
  type TelemetryPayload,
} from "./message-mapping.js";
export { deriveDeviceKey } from "../common/group-key.js";
export {
  MemoryRegistrationStore,
  JsonFileRegistrationStore,
  type RegistrationStore,
  type CachedRegistration,
} from "./registration-store.js";
export type { HubLink, HubLinkEvents, TwinDocument, HubIdentity } from "./hub-connection.js";
export type { SessionDependencies } from "./dependencies.js";
export type { ProvisionedIdentity } from "./provisioning.js";
export {
  DeviceSessionError,
  ValidationError,
  ConfigurationError,
  OperationTimeoutError,
  SessionStoppedError,
  TelemetryKeptError,
  OutboxOverflowError,
  ProvisioningError,
  HubError,
} from "./errors.js";
