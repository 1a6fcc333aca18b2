// Which failures the session retries: one function for DPS and IoT Hub (docs/architecture.md §7.3, "which errors are
// retryable is one function"). Error names are those of azure-iot-common's errors (docs/hub-amqp-protocol.md §6.1,
// docs/dps-protocol.md §3.4/§4.2/§5.3) and of Node's socket errors.

/** Transient by nature: the SDK's DefaultErrorFilter plus the HTTP/DPS timeouts and our own timeouts. */
const RETRYABLE_NAMES = new Set([
  "NotConnectedError",
  "InternalServerError",
  "ServiceUnavailableError",
  "ThrottlingError",
  "TimeoutError",
  "DeviceTimeoutError",
  "GatewayTimeoutError",
  "BadDeviceResponseError",
  "OperationTimeoutError",
  "OperationCancelledError",
]);

/**
 * Permanent until someone changes configuration or enrollment: retrying only loads the service
 * (docs/conventions.md §5.2: revoked devices retrying forever "consume service resources").
 * SyntaxError is what the DPS client throws for a `disabled`/`unassigned` registration status.
 */
const PERMANENT_NAMES = new Set([
  "UnauthorizedError",
  "DeviceNotFoundError",
  "IotHubNotFoundError",
  "ArgumentError",
  "ArgumentOutOfRangeError",
  "FormatError",
  "TooManyDevicesError",
  "DeviceRegistrationFailedError",
  // azure-iot-common names DeviceRegistrationFailedError instances so:
  "ProvisioningRegistrationFailedError",
  "DeviceAlreadyExistsError",
  "InvalidOperationError",
  "NotImplementedError",
  "MessageTooLargeError",
  "IotHubQuotaExceededError",
  "IoTHubSuspendedError",
  "PreconditionFailedError",
  "InvalidEtagError",
  "SecurityDeviceError",
  "SyntaxError",
  "ValidationError",
  "ConfigurationError",
  "OutboxOverflowError",
  "SessionStoppedError",
]);

/** Socket-level failures: the network or the service is away for now. */
const RETRYABLE_SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

/**
 * MQTT CONNACK return codes that refuse the credentials (MQTT 3.1.1 §3.2.2.3): 4 bad user name or password,
 * 5 not authorized. mqtt.js reports them as a plain Error with the numeric code.
 */
const MQTT_REFUSED_CREDENTIALS = new Set([4, 5]);

/** TpmError codes that mean "the TPM is unreachable right now", not "the TPM said no". */
const RETRYABLE_TPM_CODES = new Set(["TPM_TRANSPORT", "TPM_TIMEOUT"]);

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  statusCode?: unknown;
  amqpError?: unknown;
  transportObj?: unknown;
  cause?: unknown;
}

/**
 * The error that says what really happened: the SDK wraps AMQP errors (`.amqpError`), puts a disconnect
 * reason in `results.Disconnected.transportObj`, and we wrap with `cause`.
 */
export function rootCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 5; depth++) {
    if (typeof current !== "object" || current === null) return current;
    const e = current as ErrorLike;
    // Only errors count as causes: azure-iot-common errors also carry the raw AMQP outcome in transportObj.
    const inner = [e.transportObj, e.amqpError, isWrapper(e) ? e.cause : undefined].find(
      (candidate) => candidate instanceof Error && candidate !== current,
    );
    if (inner === undefined) return current;
    current = inner;
  }
  return current;
}

/** Our own wrappers carry the real failure in `cause`. */
function isWrapper(e: ErrorLike): boolean {
  return e.name === "ProvisioningError" || e.name === "HubError" || e.name === "Disconnected";
}

function httpStatus(e: ErrorLike): number | undefined {
  return typeof e.statusCode === "number" ? e.statusCode : undefined;
}

/** True when trying again later may succeed; false when only a change of configuration or enrollment will. */
export function isRetryable(error: unknown): boolean {
  const root = rootCause(error);
  if (typeof root !== "object" || root === null) return true;
  const e = root as ErrorLike;
  const name = typeof e.name === "string" ? e.name : "";
  if (name === "TpmError") return typeof e.code === "string" && RETRYABLE_TPM_CODES.has(e.code);
  if (typeof e.code === "string" && RETRYABLE_SOCKET_CODES.has(e.code)) return true;
  if (typeof e.code === "number" && MQTT_REFUSED_CREDENTIALS.has(e.code)) return false;
  if (RETRYABLE_NAMES.has(name)) return true;
  if (PERMANENT_NAMES.has(name)) return false;
  const status = httpStatus(e);
  if (status !== undefined) return status === 408 || status === 429 || status >= 500;
  // Unknown failures (a plain Error from a broken link, an unexpected TLS failure) are retried with backoff:
  // a gateway that gives up for good on a surprise is the peers' most reported defect.
  return true;
}

/** The hub refused the device identity itself (CBS 401/404): the cached registration is stale. */
export function isIdentityRejected(error: unknown): boolean {
  const root = rootCause(error);
  if (typeof root !== "object" || root === null) return false;
  const e = root as ErrorLike;
  if (typeof e.code === "number" && MQTT_REFUSED_CREDENTIALS.has(e.code)) return true;
  return e.name === "UnauthorizedError" || e.name === "DeviceNotFoundError";
}

/** The service asked us to slow down: wait at least the throttled minimum. */
export function isThrottled(error: unknown): boolean {
  const root = rootCause(error);
  if (typeof root !== "object" || root === null) return false;
  const e = root as ErrorLike;
  return e.name === "ThrottlingError" || httpStatus(e) === 429;
}

/**
 * Only a person changing the configuration can mend it: a malformed ID scope, a missing or malformed key, a
 * certificate or private key that cannot be read (wrong passphrase included). Everything else a service or a
 * network might recover from, so the session keeps trying.
 */
export function isConfigurationProblem(error: unknown): boolean {
  const root = rootCause(error);
  if (typeof root !== "object" || root === null) return false;
  const e = root as ErrorLike;
  if (e.name === "ConfigurationError" || e.name === "ArgumentError" || e.name === "ArgumentOutOfRangeError")
    return true;
  // OpenSSL's verdicts on our own key or certificate ("bad decrypt", "no start line", ...), not the peer's.
  return typeof e.code === "string" && /^ERR_OSSL_(?!SSL_)/.test(e.code);
}

/** IoT Hub's daily message quota is used up: telemetry waits (the longest backoff) until it resets. */
export function isQuotaExceeded(error: unknown): boolean {
  const root = rootCause(error);
  if (typeof root !== "object" || root === null) return false;
  return (root as ErrorLike).name === "IotHubQuotaExceededError";
}

/**
 * The hub refused this one message for what it is (too large, malformed): sending it again cannot help, so
 * it is rejected and the next message goes.
 */
export function isMessageRefused(error: unknown): boolean {
  const root = rootCause(error);
  if (typeof root !== "object" || root === null) return false;
  const name = (root as ErrorLike).name;
  return (
    name === "MessageTooLargeError" ||
    name === "ArgumentError" ||
    name === "FormatError" ||
    name === "ArgumentOutOfRangeError"
  );
}

/** The wait a service asked for (DPS `retryAfter`, an HTTP Retry-After), in ms, when it named one. */
export function retryAfterMs(error: unknown): number | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    const e = current as { retryAfterInMs?: unknown; retryAfter?: unknown; cause?: unknown };
    if (typeof e.retryAfterInMs === "number" && e.retryAfterInMs >= 0) return e.retryAfterInMs;
    if (typeof e.retryAfter === "number" && e.retryAfter >= 0) return e.retryAfter * 1000;
    current = e.cause;
  }
  return undefined;
}

/** A short, secret-free description of a failure for state events and status text. */
export function describeError(error: unknown): string {
  const root = rootCause(error);
  if (root instanceof Error) {
    const inner = `${root.name}${root.message ? `: ${root.message}` : ""}`;
    if (!(error instanceof Error) || error === root) return redact(inner);
    // Our wrappers already quote the cause in their message.
    return redact(error.message.includes(inner) ? error.message : `${error.message}: ${inner}`);
  }
  if (error instanceof Error) return redact(`${error.name}: ${error.message}`);
  return redact(String(error));
}

/**
 * Removes anything that looks like a credential: SAS signatures, SharedAccessKey=..., PEM private keys.
 * The SDK sometimes puts a connection string or token into an error message.
 */
export function redact(text: string): string {
  return text
    .replace(/(sig=)[^&\s;"']+/gi, "$1<redacted>")
    .replace(/(SharedAccessKey=)[^;\s"']+/gi, "$1<redacted>")
    .replace(/(SharedAccessSignature )[^\s"']+/g, "$1<redacted>")
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, "<redacted key>");
}
