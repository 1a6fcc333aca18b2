// The hub module's public contract, shared with the DPS emulator and the emulator core.
import type { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";

export type DeviceStatus = "enabled" | "disabled";

export type DeviceAuthentication =
  /** base64 keys; for TPM devices the key issued in the activation blob */
  | { type: "sas"; symmetricKey: { primaryKey: string; secondaryKey?: string } }
  /** SHA-1 or SHA-256 hex thumbprints, upper case */
  | { type: "selfSigned"; x509Thumbprint: { primaryThumbprint: string; secondaryThumbprint?: string } }
  /** any client certificate chaining to a trusted CA whose CN == deviceId */
  | { type: "certificateAuthority" };

export interface HubDeviceRecord {
  /** Logical hub, e.g. "provisio-hub-1.azure-devices.net"; several may share one listener. */
  hubHostName: string;
  deviceId: string;
  status: DeviceStatus;
  authentication: DeviceAuthentication;
  modelId?: string;
  /** Present only for IoT Edge devices. */
  capabilities?: { iotEdge: boolean };
}

export type TwinProperties = Record<string, unknown> & { $version: number };

/** Azure's twin JSON shape (service side). */
export interface TwinDocument {
  deviceId: string;
  etag: string;
  version: number;
  status: DeviceStatus;
  modelId?: string;
  tags: Record<string, unknown>;
  properties: { desired: TwinProperties; reported: TwinProperties };
}

export interface TwinSeed {
  tags?: Record<string, unknown>;
  properties?: { desired?: Record<string, unknown> };
}

export interface TelemetrySystemProperties {
  messageId?: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  userId?: string;
  /** IoT Plug and Play component (message annotation dt-subject). */
  component?: string;
  [key: string]: string | undefined;
}

export interface TelemetryRecord {
  hubHostName: string;
  deviceId: string;
  enqueuedTimeUtc: string;
  body: Buffer;
  /** Application properties. */
  properties: Record<string, string>;
  systemProperties: TelemetrySystemProperties;
}

export interface HubOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 or absent = a free port. */
  port?: number;
  /** Server key/cert PEM; clientCa = CAs accepted for X.509 device certificates. */
  tls: { key: string; cert: string; clientCa?: string[] };
  /** Logical hub names served by this listener. */
  hostNames: string[];
  /** JSON persistence of devices and twins (survives restart); the C2D queues are kept next to it. */
  dataFile?: string;
  /** Shared access policies the service side (azure-iothub Client over AMQP) authenticates with. */
  servicePolicies?: { keyName: string; key: string }[];
  /** How long a C2D message out to a device (AMQP link, HTTPS) stays locked before it is delivered again; 1 min. */
  c2dLockTimeoutMs?: number;
  /** MQTT over TLS port (8883 on Azure); 0 = a free port; absent = no MQTT listener. */
  mqttPort?: number;
  /** HTTPS port (443 on Azure): MQTT and AMQP over WebSocket, device HTTPS API; 0 = a free port; absent = none. */
  httpsPort?: number;
  /**
   * Serves the HTTPS port's requests that are neither WebSocket nor device API, when another API shares the
   * port (the service REST API, as on Azure's hub host name); without it they are answered 404.
   */
  otherHttpsRequests?: (req: IncomingMessage, res: ServerResponse) => void;
  /** One line per refused connection or transport error (never keys or tokens). */
  log?: (line: string) => void;
}

export interface HubRegistry {
  /** Creates the twin when new; twin given => replaces tags/desired. */
  upsertDevice(device: HubDeviceRecord, twin?: TwinSeed): void;
  getDevice(hubHostName: string, deviceId: string): HubDeviceRecord | undefined;
  listDevices(hubHostName?: string): HubDeviceRecord[];
  /** Disconnects the device. */
  deleteDevice(hubHostName: string, deviceId: string): boolean;
  /** Disabling disconnects the device. */
  setStatus(hubHostName: string, deviceId: string, status: DeviceStatus): void;
}

export interface MethodRequest {
  methodName: string;
  payload?: unknown;
  responseTimeoutInSeconds?: number;
  connectTimeoutInSeconds?: number;
}

export interface CloudToDeviceMessage {
  body: Buffer | string;
  messageId?: string;
  correlationId?: string;
  /** System properties IoT Hub passes on to the device (AMQP content-type / content-encoding, MQTT $.ct / $.ce). */
  contentType?: string;
  contentEncoding?: string;
  properties?: Record<string, string>;
  expiryTimeUtc?: string;
  /** Which delivery feedback the service asked for (iothub-ack); default none. */
  ack?: C2dAck;
}

export type C2dAck = "none" | "positive" | "negative" | "full";

export interface ConnectionEvent {
  hubHostName: string;
  deviceId: string;
  connected: boolean;
}

/** How the device settled a cloud-to-device message (emulator addition, for tests and the service API). */
export interface C2dFeedbackEvent {
  hubHostName: string;
  deviceId: string;
  messageId: string;
  outcome: "completed" | "rejected" | "abandoned" | "expired" | "deadLettered";
}

/** The device subscribed to (PUT) or unsubscribed from (DELETE) desired-property notifications (emulator addition). */
export interface TwinSubscriptionEvent {
  hubHostName: string;
  deviceId: string;
  subscribed: boolean;
}

/**
 * Events: "telemetry" (TelemetryRecord), "connection" (ConnectionEvent); emulator additions: "c2dFeedback"
 * (C2dFeedbackEvent), "twinSubscription" (TwinSubscriptionEvent).
 */
export interface HubService extends EventEmitter {
  getTwin(hubHostName: string, deviceId: string): TwinDocument | undefined;
  /** Merge-patch; a desired change is pushed to the connected device; throws HubServiceError 404/412/400. */
  updateTwin(hubHostName: string, deviceId: string, patch: TwinSeed, ifMatch?: string): TwinDocument;
  replaceTwin(hubHostName: string, deviceId: string, twin: TwinSeed, ifMatch?: string): TwinDocument;
  /** Rejects HubServiceError 404 (DeviceNotOnline) / 504 (timeout). */
  invokeMethod(
    hubHostName: string,
    deviceId: string,
    request: MethodRequest,
  ): Promise<{ status: number; payload: unknown }>;
  /** Queued until the device's C2D link has credit. */
  sendCloudToDevice(hubHostName: string, deviceId: string, message: CloudToDeviceMessage): void;
  /** Newest last, bounded buffer. */
  recentTelemetry(hubHostName: string, deviceId?: string, limit?: number): TelemetryRecord[];
  isConnected(hubHostName: string, deviceId: string): boolean;
  /** Open device connections, AMQP and MQTT (tests assert "one connection per device"). */
  connectionCount(): number;
}

export type FaultLink = "telemetry" | "twin" | "c2d" | "methods";

/** Emulator-only fault injection, for tests. */
export interface HubFaults {
  /** Socket destroyed. */
  dropConnection(hubHostName: string, deviceId: string): boolean;
  /** Link detached with an error. */
  detachLink(hubHostName: string, deviceId: string, link: FaultLink): boolean;
  /** Next N CBS put-token answered 401. */
  rejectNextTokens(count: number): void;
  /** Next N telemetry sends rejected as throttled (com.microsoft:device-container-throttled, a rate limit). */
  throttleNext(count: number): void;
  /** Next N telemetry sends rejected as over the daily quota (amqp:resource-limit-exceeded). */
  exceedQuotaNext(count: number): void;
  /** Next N twin GETs, over AMQP or MQTT, answered 429 (ThrottlingException, IoT Hub's twin read limit). */
  throttleTwinGetsNext(count: number): void;
  /** Telemetry dispositions delayed (0 = off). */
  delayAcks(ms: number): void;
}

export interface Hub {
  readonly host: string;
  readonly port: number;
  /** The MQTT over TLS port, when the hub has that listener. */
  readonly mqttPort?: number;
  /** The HTTPS (WebSocket and device API) port, when the hub has that listener. */
  readonly httpsPort?: number;
  readonly registry: HubRegistry;
  readonly service: HubService;
  readonly faults: HubFaults;
  close(): Promise<void>;
}
