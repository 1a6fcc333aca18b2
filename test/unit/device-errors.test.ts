// The session's typed errors: their names (the retry policy and the Node-RED nodes tell them apart by name),
// the context each message carries, and the cause kept for describeError.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ConfigurationError,
  DeviceSessionError,
  HubError,
  OperationTimeoutError,
  OutboxOverflowError,
  ProvisioningError,
  SessionStoppedError,
  TelemetryKeptError,
  ValidationError,
} from "../../src/device/errors.js";

describe("device session errors", () => {
  it("each is a DeviceSessionError named after its class", () => {
    const cause = new Error("socket closed");
    const all: Array<[DeviceSessionError, string]> = [
      [new DeviceSessionError("m"), "DeviceSessionError"],
      [new ValidationError("m"), "ValidationError"],
      [new ConfigurationError("m"), "ConfigurationError"],
      [new OperationTimeoutError("twin GET", 30), "OperationTimeoutError"],
      [new SessionStoppedError("telemetry"), "SessionStoppedError"],
      [new TelemetryKeptError(), "TelemetryKeptError"],
      [new OutboxOverflowError("reject-new", 1, 2), "OutboxOverflowError"],
      [new ProvisioningError("m", "dev-1", { cause }), "ProvisioningError"],
      [new HubError("m", "dev-1", { cause }), "HubError"],
    ];
    for (const [error, name] of all) {
      assert.ok(error instanceof DeviceSessionError && error instanceof Error, name);
      assert.equal(error.name, name);
      assert.equal(String(error).startsWith(`${name}: `), true);
    }
  });

  it("keeps the message and the cause it was given", () => {
    const cause = new Error("socket closed");
    const base = new DeviceSessionError("base message", { cause });
    assert.equal(base.message, "base message");
    assert.equal(base.cause, cause);
    const provisioning = new ProvisioningError("DPS refused", "dev-7", { cause });
    assert.equal(provisioning.message, "DPS refused");
    assert.equal(provisioning.registrationId, "dev-7");
    assert.equal(provisioning.cause, cause);
    const hub = new HubError("hub refused", "dev-8", { cause });
    assert.equal(hub.message, "hub refused");
    assert.equal(hub.deviceId, "dev-8");
    assert.equal(hub.cause, cause);
    assert.equal(new ConfigurationError("no key").message, "no key");
    assert.equal(new ValidationError("too big").message, "too big");
  });

  it("names the operation and the limit of a timeout, and the operation a stop abandoned", () => {
    const timeout = new OperationTimeoutError("twin GET", 30000);
    assert.equal(timeout.message, "twin GET got no answer within 30000 ms");
    assert.equal(timeout.operation, "twin GET");
    assert.equal(timeout.timeoutMs, 30000);
    assert.equal(
      new SessionStoppedError("telemetry").message,
      "telemetry abandoned: the device session was stopped",
    );
    assert.equal(
      new TelemetryKeptError().message,
      "telemetry kept in the outbox on disk: it is sent after the next start, with the same messageId",
    );
  });

  it("says for an overflow which policy acted and what the bounds are", () => {
    const dropped = new OutboxOverflowError("drop-oldest", 10, 2048);
    assert.equal(
      dropped.message,
      "telemetry dropped: the outbox is full (10 messages or 2048 bytes) and the oldest message makes room",
    );
    assert.deepEqual([dropped.policy, dropped.maxMessages, dropped.maxBytes], ["drop-oldest", 10, 2048]);
    const refused = new OutboxOverflowError("reject-new", 3, 99);
    assert.equal(
      refused.message,
      "telemetry rejected: the outbox is full (3 messages or 99 bytes), or the message is larger than all of it",
    );
    assert.equal(refused.policy, "reject-new");
  });
});
