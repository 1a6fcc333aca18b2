// The retry policy: what each failure means (retry, register again, stop until reconfigured) and how long
// to wait; only a configuration a person must fix stops the retries.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { errors } from "azure-iot-common";
import { ExponentialBackoff } from "../../src/device/backoff.js";
import {
  ConfigurationError,
  HubError,
  OperationTimeoutError,
  OutboxOverflowError,
  ProvisioningError,
  SessionStoppedError,
  ValidationError,
} from "../../src/device/errors.js";
import { DefaultRetryPolicy, RetryCounter } from "../../src/device/retry-policy.js";
import { isRetryable } from "../../src/device/retryable.js";
import { TpmError } from "../../src/tpm/errors.js";

const backoff = new ExponentialBackoff({
  initialDelayMs: 100,
  maxDelayMs: 6_400,
  jitter: 0,
  throttledMinDelayMs: 1_000,
});
const policy = new DefaultRetryPolicy(backoff);

describe("retry policy", () => {
  it("stops only for what a person must fix in the configuration", () => {
    for (const error of [
      new ConfigurationError("the ID scope is malformed"),
      new errors.ArgumentError("bad connection string"),
      Object.assign(new Error("error:1C800064:Provider routines::bad decrypt"), {
        code: "ERR_OSSL_BAD_DECRYPT",
      }),
      Object.assign(new Error("no start line"), { code: "ERR_OSSL_PEM_NO_START_LINE" }),
    ]) {
      assert.equal(policy.classify(error), "stop", error.message);
    }
  });

  it("retries what a service or the network may recover from, refusals included", () => {
    for (const error of [
      new errors.ThrottlingError("slow down"),
      new errors.IotHubQuotaExceededError("quota"),
      new errors.ServiceUnavailableError("busy"),
      new errors.DeviceRegistrationFailedError("enrollment disabled"),
      new SyntaxError("registration status is disabled"),
      Object.assign(new Error("reset"), { code: "ECONNRESET" }),
      Object.assign(new Error("peer said bad certificate"), { code: "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE" }),
      new TpmError("TPM_TRANSPORT", "socket closed"),
      new TpmError("TPM_RESPONSE", "TPM_RC_FAILURE", { responseCode: 0x101 }),
      new Error("something nobody foresaw"),
    ]) {
      assert.equal(policy.classify(error), "retry", error.name);
    }
  });

  it("registers again when the hub refuses the identity, through our wrappers too", () => {
    assert.equal(policy.classify(new errors.UnauthorizedError("token refused")), "reprovision");
    assert.equal(policy.classify(new errors.DeviceNotFoundError("no such device")), "reprovision");
    assert.equal(
      policy.classify(new HubError("connect failed", "dev", { cause: new errors.UnauthorizedError("401") })),
      "reprovision",
    );
  });

  it("our own ConfigurationError stops even when wrapped", () => {
    assert.equal(
      policy.classify(new ProvisioningError("failed", "dev", { cause: new ConfigurationError("no key") })),
      "stop",
    );
  });

  it("waits exponentially for transient failures, at least the throttled minimum when throttled", () => {
    const transient = new errors.NotConnectedError("gone");
    assert.deepEqual(
      [1, 2, 3, 4].map((attempt) => policy.delayMs(attempt, transient)),
      [100, 200, 400, 800],
    );
    assert.equal(policy.delayMs(1, new errors.ThrottlingError("slow")), 1_000);
    assert.equal(policy.delayMs(6, new errors.ThrottlingError("slow")), 3_200);
  });

  it("waits the longest delay for refusals only time mends (quota, disabled, unknown device)", () => {
    assert.equal(policy.delayMs(1, new errors.IotHubQuotaExceededError("quota")), 6_400);
    assert.equal(policy.delayMs(1, new errors.UnauthorizedError("not enrolled")), 6_400);
    assert.equal(policy.delayMs(1, new SyntaxError("disabled")), 6_400);
  });

  it("honours a retry-after the service asked for when it is longer", () => {
    const asked = Object.assign(new errors.ThrottlingError("slow"), { retryAfterInMs: 5_000 });
    assert.equal(policy.delayMs(1, asked), 5_000);
    const wrapped = new ProvisioningError("throttled", "dev", {
      cause: Object.assign(new Error("429"), { retryAfter: 3 }),
    });
    assert.equal(policy.delayMs(1, wrapped), 3_000);
  });

  it("counts attempts and starts over after reset", () => {
    const counter = new RetryCounter(policy);
    const error = new errors.NotConnectedError("gone");
    assert.deepEqual(counter.next(error), { attempt: 1, delayMs: 100 });
    assert.deepEqual(counter.next(error), { attempt: 2, delayMs: 200 });
    counter.reset();
    assert.deepEqual(counter.next(error), { attempt: 1, delayMs: 100 });
  });

  it("the default backoff is capped at 60 s, jitter included", () => {
    const defaults = new DefaultRetryPolicy();
    for (let attempt = 1; attempt < 200; attempt += 7) {
      const delay = defaults.delayMs(attempt, new errors.NotConnectedError("gone"));
      assert.ok(delay <= 60_000 && delay >= 0, `attempt ${attempt}: ${delay}`);
    }
    assert.ok(defaults.delayMs(100, new errors.NotConnectedError("gone")) >= 48_000);
  });

  it("classifies each of our own errors, bare and wrapped", () => {
    // undefined: the session never asks the policy about these (they fail one message, not the session)
    const ours: [Error, "retry" | "stop" | undefined, boolean][] = [
      [new ConfigurationError("the ID scope is malformed"), "stop", false],
      [new OperationTimeoutError("telemetry", 100), "retry", true],
      [new ValidationError("payload is not serialisable"), undefined, false],
      [new OutboxOverflowError("reject-new", 10, 1000), undefined, false],
      [new SessionStoppedError("twin GET"), undefined, false],
    ];
    for (const [error, action, retryable] of ours) {
      for (const wrapped of [
        error,
        new ProvisioningError("failed", "dev", { cause: error }),
        new HubError("failed", "dev", { cause: error }),
      ]) {
        if (action) assert.equal(policy.classify(wrapped), action, `${error.name} in ${wrapped.name}`);
        assert.equal(isRetryable(wrapped), retryable, `${error.name} in ${wrapped.name}`);
      }
    }
  });

  it("waits the longest delay after our own permanent errors, the backoff after our timeouts", () => {
    assert.equal(policy.delayMs(1, new ConfigurationError("no key")), 6_400);
    assert.equal(policy.delayMs(1, new ValidationError("bad")), 6_400);
    assert.equal(policy.delayMs(1, new OperationTimeoutError("telemetry", 100)), 100);
  });

  it("the default policy waits 60 s at most, exactly, and never the uncapped delay", () => {
    const defaults = new DefaultRetryPolicy(new ExponentialBackoff({ random: () => 0 }));
    assert.equal(defaults.delayMs(1, new errors.NotConnectedError("gone")), 1_000);
    assert.equal(defaults.delayMs(1_000, new errors.NotConnectedError("gone")), 60_000);
    assert.equal(defaults.delayMs(1, new errors.IotHubQuotaExceededError("quota")), 60_000);
    assert.equal(defaults.delayMs(1, new errors.ThrottlingError("slow")), 10_000);
  });
});
