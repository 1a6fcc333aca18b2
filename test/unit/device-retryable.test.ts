import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { errors, results } from "azure-iot-common";
import { TpmError } from "../../src/tpm/errors.js";
import { HubError, OperationTimeoutError, ProvisioningError } from "../../src/device/errors.js";
import {
  describeError,
  isIdentityRejected,
  isRetryable,
  isThrottled,
  redact,
} from "../../src/device/retryable.js";

function named(name: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error("x"), { name }, extra);
}

describe("isRetryable", () => {
  it("retries the SDK's transient errors", () => {
    for (const error of [
      new errors.NotConnectedError("gone"),
      new errors.ServiceUnavailableError("busy"),
      new errors.InternalServerError("oops"),
      new errors.ThrottlingError("slow down"),
      new errors.TimeoutError("late"),
    ]) {
      assert.equal(isRetryable(error), true, error.name);
    }
  });

  it("does not retry what only a configuration or enrollment change fixes", () => {
    for (const error of [
      new errors.UnauthorizedError("no"),
      new errors.DeviceNotFoundError("who"),
      new errors.ArgumentError("bad"),
      new errors.MessageTooLargeError("big"),
      new errors.IotHubQuotaExceededError("quota"),
      new errors.DeviceRegistrationFailedError("failed"),
      new SyntaxError("status is disabled"),
    ]) {
      assert.equal(isRetryable(error), false, error.name);
    }
  });

  it("retries socket failures and our own timeouts", () => {
    assert.equal(isRetryable(Object.assign(new Error("connect"), { code: "ECONNREFUSED" })), true);
    assert.equal(isRetryable(Object.assign(new Error("reset"), { code: "ECONNRESET" })), true);
    assert.equal(isRetryable(new OperationTimeoutError("twin GET", 100)), true);
  });

  it("refuses MQTT CONNACK 'not authorized' (code 5) and bad credentials (code 4)", () => {
    assert.equal(
      isRetryable(Object.assign(new Error("Connection refused: Not authorized"), { code: 5 })),
      false,
    );
    assert.equal(
      isRetryable(Object.assign(new Error("Connection refused: Bad username or password"), { code: 4 })),
      false,
    );
  });

  it("judges HTTP statuses: 408, 429 and 5xx retry, other 4xx do not", () => {
    assert.equal(isRetryable(named("Error", { statusCode: 503 })), true);
    assert.equal(isRetryable(named("Error", { statusCode: 429 })), true);
    assert.equal(isRetryable(named("Error", { statusCode: 408 })), true);
    assert.equal(isRetryable(named("Error", { statusCode: 403 })), false);
  });

  it("looks through the SDK's and our wrappers to the real cause", () => {
    const wrappedAmqp = Object.assign(new Error("could not update twin"), {
      amqpError: new errors.ThrottlingError("t"),
    });
    assert.equal(isRetryable(wrappedAmqp), true);
    const disconnected = new results.Disconnected(new errors.UnauthorizedError("token"), "reason");
    assert.equal(isRetryable(disconnected), false);
    const provisioning = new ProvisioningError("failed", "dev", {
      cause: new errors.UnauthorizedError("401"),
    });
    assert.equal(isRetryable(provisioning), false);
    const hub = new HubError("failed", "dev", { cause: new errors.NotConnectedError("gone") });
    assert.equal(isRetryable(hub), true);
  });

  it("ignores the raw AMQP outcome the SDK's errors carry in transportObj", () => {
    const quota = Object.assign(new errors.IotHubQuotaExceededError("could not send"), {
      transportObj: { condition: "amqp:resource-limit-exceeded", description: "quota" },
    });
    assert.equal(isRetryable(quota), false);
  });

  it("retries a TPM that cannot be reached, not a TPM that said no", () => {
    assert.equal(isRetryable(new TpmError("TPM_TRANSPORT", "socket closed")), true);
    assert.equal(isRetryable(new TpmError("TPM_TIMEOUT", "no answer")), true);
    assert.equal(isRetryable(new TpmError("TPM_RESPONSE", "TPM_RC_FAILURE", { responseCode: 0x101 })), false);
  });

  it("retries a surprise (plain Error) rather than giving up for good", () => {
    assert.equal(isRetryable(new Error("rhea: connection disconnected")), true);
  });
});

describe("identity rejection and throttling", () => {
  it("treats 401 and 404 from the hub as a stale identity", () => {
    assert.equal(isIdentityRejected(new errors.UnauthorizedError("signature mismatch")), true);
    assert.equal(isIdentityRejected(new errors.DeviceNotFoundError("gone")), true);
    assert.equal(isIdentityRejected(new errors.NotConnectedError("network")), false);
    assert.equal(isIdentityRejected(new results.Disconnected(new errors.UnauthorizedError("x"), "r")), true);
  });

  it("recognises throttling by class or HTTP 429", () => {
    assert.equal(isThrottled(new errors.ThrottlingError("slow")), true);
    assert.equal(isThrottled(named("Error", { statusCode: 429 })), true);
    assert.equal(isThrottled(new errors.NotConnectedError("x")), false);
  });
});

describe("error descriptions", () => {
  it("never carry a SAS signature, a key or a private key", () => {
    const leaky = new Error(
      "failed with SharedAccessSignature sr=hub%2Fdevices%2Fd&sig=c2VjcmV0&se=1 for HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0a2V5 " +
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    );
    const text = describeError(leaky);
    assert.ok(!text.includes("c2VjcmV0"), text);
    assert.ok(!text.includes("AAAA"), text);
    assert.match(text, /<redacted>/);
  });

  it("redacts a bare sig= parameter", () => {
    assert.equal(redact("x?sig=abc%2Bdef&se=5"), "x?sig=<redacted>&se=5");
  });

  it("names the root cause under our wrapper", () => {
    const text = describeError(
      new ProvisioningError("DPS registration failed", "d", { cause: new errors.UnauthorizedError("401") }),
    );
    assert.match(text, /UnauthorizedError/);
  });
});
