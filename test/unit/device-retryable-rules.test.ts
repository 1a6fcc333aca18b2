// The failure rules one name at a time, and their order: which evidence decides when an error carries
// several (a TPM code, a socket code, an MQTT return code, an SDK error class, an HTTP status).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { errors } from "azure-iot-common";
import {
  describeError,
  isConfigurationProblem,
  isIdentityRejected,
  isMessageRefused,
  isQuotaExceeded,
  isRetryable,
  isThrottled,
  redact,
  retryAfterMs,
  rootCause,
} from "../../src/device/retryable.js";
import { ConfigurationError, HubError, ProvisioningError } from "../../src/device/errors.js";

function named(name: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error("x"), { name }, extra);
}

/** An HTTP status that alone would mean "do not retry". */
const refusingStatus = { statusCode: 400 };

describe("failure rules, name by name", () => {
  it("a transient SDK error class is retried whatever HTTP status it carries", () => {
    for (const name of [
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
    ]) {
      assert.equal(isRetryable(named(name, refusingStatus)), true, name);
    }
  });

  it("a permanent class is not retried, even with a status that would be", () => {
    for (const name of [
      "UnauthorizedError",
      "DeviceNotFoundError",
      "IotHubNotFoundError",
      "ArgumentError",
      "ArgumentOutOfRangeError",
      "FormatError",
      "TooManyDevicesError",
      "DeviceRegistrationFailedError",
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
    ]) {
      assert.equal(isRetryable(named(name, { statusCode: 503 })), false, name);
    }
  });

  it("a socket failure is retried before anything else is weighed", () => {
    for (const code of [
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
    ]) {
      assert.equal(isRetryable(named("UnauthorizedError", { code, ...refusingStatus })), true, code);
    }
    assert.equal(
      isRetryable(named("Error", { code: "EACCES", ...refusingStatus })),
      false,
      "not a socket code",
    );
  });

  it("MQTT return codes 4 and 5 refuse the credentials; other numbers do not decide", () => {
    assert.equal(isRetryable(named("NotConnectedError", { code: 5 })), false);
    assert.equal(isRetryable(named("Error", { code: 3 })), true);
    assert.equal(isRetryable(named("Error", { code: "5" })), true);
    assert.equal(isIdentityRejected(named("Error", { code: 4 })), true);
    assert.equal(isIdentityRejected(named("Error", { code: 3 })), false);
    assert.equal(isIdentityRejected(named("Error", { code: "5" })), false);
  });

  it("a TpmError is retried only for an unreachable TPM, whatever else it carries", () => {
    assert.equal(isRetryable(named("TpmError", { code: "TPM_TIMEOUT" })), true);
    assert.equal(isRetryable(named("TpmError", { code: "TPM_TRANSPORT" })), true);
    assert.equal(isRetryable(named("TpmError", { code: "TPM_RESPONSE", statusCode: 503 })), false);
    assert.equal(isRetryable(named("TpmError", { code: 7 })), false);
  });

  it("judges a bare HTTP status at its edges", () => {
    const byStatus = (statusCode: number) => isRetryable(named("Error", { statusCode }));
    assert.deepEqual([399, 400, 404, 407, 408, 409, 428, 429, 430, 499, 500, 503].map(byStatus), [
      false,
      false,
      false,
      false,
      true,
      false,
      false,
      true,
      false,
      false,
      true,
      true,
    ]);
    assert.equal(isRetryable(named("Error", { statusCode: "400" })), true, "a status that is not a number");
  });

  it("anything that is not an object: retried, and neither refused, throttled nor a configuration problem", () => {
    for (const value of [undefined, null, "boom", 42]) {
      assert.equal(isRetryable(value), true, String(value));
      assert.equal(isIdentityRejected(value), false);
      assert.equal(isThrottled(value), false);
      assert.equal(isConfigurationProblem(value), false);
      assert.equal(isQuotaExceeded(value), false);
      assert.equal(isMessageRefused(value), false);
    }
    assert.equal(
      isRetryable(Object.assign(new Error("x"), { name: 17 })),
      true,
      "a name that is not a string",
    );
  });

  it("configuration problems: our own, the SDK's argument errors, OpenSSL's verdicts on our key only", () => {
    for (const error of [
      new ConfigurationError("no key"),
      named("ArgumentError"),
      named("ArgumentOutOfRangeError"),
      named("Error", { code: "ERR_OSSL_BAD_DECRYPT" }),
    ]) {
      assert.equal(isConfigurationProblem(error), true, error.name);
    }
    for (const error of [
      named("Error", { code: "ERR_OSSL_SSL_ALERT_BAD_CERTIFICATE" }),
      named("Error", { code: "X_ERR_OSSL_BAD_DECRYPT" }),
      named("ValidationError"),
      named("Error", { code: 1 }),
    ]) {
      assert.equal(isConfigurationProblem(error), false, error.message);
    }
  });

  it("quota and per-message refusals, bare and wrapped", () => {
    assert.equal(isQuotaExceeded(new errors.IotHubQuotaExceededError("q")), true);
    assert.equal(
      isQuotaExceeded(new HubError("send", "d", { cause: new errors.IotHubQuotaExceededError("q") })),
      true,
    );
    assert.equal(isQuotaExceeded(new errors.ThrottlingError("t")), false);
    for (const name of ["MessageTooLargeError", "ArgumentError", "FormatError", "ArgumentOutOfRangeError"]) {
      assert.equal(isMessageRefused(named(name)), true, name);
      assert.equal(isMessageRefused(new HubError("send", "d", { cause: named(name) })), true, name);
    }
    assert.equal(isMessageRefused(named("NotConnectedError")), false);
  });

  it("throttling by class or 429, through wrappers", () => {
    assert.equal(isThrottled(named("Error", { statusCode: 429 })), true);
    assert.equal(isThrottled(named("Error", { statusCode: 503 })), false);
    assert.equal(
      isThrottled(new ProvisioningError("p", "r", { cause: new errors.ThrottlingError("t") })),
      true,
    );
  });
});

describe("root cause", () => {
  it("looks through our wrappers, the SDK's Disconnected result and amqpError, up to five levels", () => {
    const root = new errors.UnauthorizedError("401");
    let wrapped: Error = root;
    for (let level = 0; level < 5; level++) wrapped = new HubError(`level ${level}`, "d", { cause: wrapped });
    assert.equal(rootCause(wrapped), root);
    assert.notEqual(rootCause(new HubError("deeper", "d", { cause: wrapped })), root, "stops after five");
    const disconnected = { name: "Disconnected", cause: root };
    assert.equal(rootCause(disconnected), root);
    assert.equal(rootCause(Object.assign(new Error("amqp"), { amqpError: root })), root);
  });

  it("does not follow the cause of an error that is not our wrapper, nor a cause that is not an Error", () => {
    const plain = new Error("outer", { cause: new errors.UnauthorizedError("401") });
    assert.equal(rootCause(plain), plain);
    const raw = Object.assign(new Error("outer"), {
      transportObj: { condition: "amqp:unauthorized-access" },
    });
    assert.equal(rootCause(raw), raw);
    const self: Error & { amqpError?: Error } = new Error("loop");
    self.amqpError = self;
    assert.equal(rootCause(self), self);
    assert.equal(rootCause("text"), "text");
  });
});

describe("retry-after", () => {
  it("takes the first wait named along the cause chain, zero included, in ms", () => {
    assert.equal(retryAfterMs(Object.assign(new Error("x"), { retryAfterInMs: 0 })), 0);
    assert.equal(retryAfterMs(Object.assign(new Error("x"), { retryAfter: 0 })), 0);
    assert.equal(retryAfterMs(Object.assign(new Error("x"), { retryAfter: 2 })), 2_000);
    assert.equal(
      retryAfterMs(Object.assign(new Error("x"), { retryAfterInMs: -1, retryAfter: -1 })),
      undefined,
    );
    assert.equal(
      retryAfterMs(Object.assign(new Error("x"), { retryAfterInMs: "5", retryAfter: "5" })),
      undefined,
    );
    assert.equal(retryAfterMs(undefined), undefined);
    assert.equal(retryAfterMs(null), undefined);
    assert.equal(retryAfterMs(new Error("x", { cause: null })), undefined);
    let error: Error = Object.assign(new Error("deep"), { retryAfter: 1 });
    for (let level = 0; level < 4; level++) error = new Error(`level ${level}`, { cause: error });
    assert.equal(retryAfterMs(error), 1_000, "five levels deep");
    assert.equal(retryAfterMs(new Error("six", { cause: error })), undefined, "six levels is too deep");
  });
});

describe("describeError", () => {
  it("names the root cause once, adds it to a wrapper that does not quote it, and copes with non-errors", () => {
    const inner = new errors.UnauthorizedError("token refused");
    assert.equal(describeError(inner), "UnauthorizedError: token refused");
    assert.equal(
      describeError(new HubError("connect failed", "d", { cause: inner })),
      "connect failed: UnauthorizedError: token refused",
    );
    assert.equal(
      describeError(new HubError("connect failed: UnauthorizedError: token refused", "d", { cause: inner })),
      "connect failed: UnauthorizedError: token refused",
    );
    assert.equal(describeError(named("Weird", { message: "" })), "Weird");
    assert.equal(describeError({ name: "Disconnected", cause: inner }), "UnauthorizedError: token refused");
    assert.equal(describeError("sig=abc"), "sig=<redacted>");
    assert.equal(describeError({ toString: () => "odd" }), "odd");
  });
});

describe("redact", () => {
  it("removes the whole key, signature and private key, and keeps what follows", () => {
    assert.equal(
      redact("HostName=h;DeviceId=d;SharedAccessKey=abc+/=123;Other=1"),
      "HostName=h;DeviceId=d;SharedAccessKey=<redacted>;Other=1",
    );
    assert.equal(
      redact("token SharedAccessSignature sr=h%2Fdevices%2Fd&se=1 next"),
      "token SharedAccessSignature <redacted> next",
    );
    assert.equal(
      redact("a -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- b"),
      "a <redacted key> b",
    );
    assert.equal(redact("-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----"), "<redacted key>");
  });
});
