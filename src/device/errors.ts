// Typed errors of the device session. Messages carry context (state, limits, device id) and never a secret.

export class DeviceSessionError extends Error {
  override name = "DeviceSessionError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Input the session (or a Node-RED node) refuses before anything reaches the network. */
export class ValidationError extends DeviceSessionError {
  override name = "ValidationError";
}

/** The configuration cannot work (missing key, MQTT with TPM, host:port with a WebSocket transport, ...). */
export class ConfigurationError extends DeviceSessionError {
  override name = "ConfigurationError";
}

/** An operation the service did not answer in time (the SDK has no timeout for twin and telemetry acks). */
export class OperationTimeoutError extends DeviceSessionError {
  override name = "OperationTimeoutError";
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
  ) {
    super(`${operation} got no answer within ${timeoutMs} ms`);
  }
}

/** The session was stopped or closed while the operation waited. */
export class SessionStoppedError extends DeviceSessionError {
  override name = "SessionStoppedError";
  constructor(operation: string) {
    super(`${operation} abandoned: the device session was stopped`);
  }
}

/**
 * The session closed before the hub accepted this message, and the outbox on disk keeps it: the next session over
 * the same outbox file sends it, with the same messageId. Not a loss; a flow may still want to know.
 */
export class TelemetryKeptError extends DeviceSessionError {
  override name = "TelemetryKeptError";
  constructor() {
    super("telemetry kept in the outbox on disk: it is sent after the next start, with the same messageId");
  }
}

/** A telemetry message left the outbox unsent because the outbox was full. */
export class OutboxOverflowError extends DeviceSessionError {
  override name = "OutboxOverflowError";
  constructor(
    readonly policy: "drop-oldest" | "reject-new",
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {
    const bounds = `${maxMessages} messages or ${maxBytes} bytes`;
    super(
      policy === "drop-oldest"
        ? `telemetry dropped: the outbox is full (${bounds}) and the oldest message makes room`
        : `telemetry rejected: the outbox is full (${bounds}), or the message is larger than all of it`,
    );
  }
}

/** DPS refused or failed the registration. `status` is the DPS/HTTP status when known. */
export class ProvisioningError extends DeviceSessionError {
  override name = "ProvisioningError";
  constructor(
    message: string,
    readonly registrationId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** IoT Hub refused or failed an operation. */
export class HubError extends DeviceSessionError {
  override name = "HubError";
  constructor(
    message: string,
    readonly deviceId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
