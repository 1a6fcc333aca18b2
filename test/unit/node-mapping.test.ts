import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeDesired } from "../../src/nodes/shared/desired-document.js";
import { iothubOf, statusFor } from "../../src/nodes/shared/status.js";
import { telemetryOptionsOf } from "../../src/nodes/shared/telemetry-options.js";
import { connectionSpecOf } from "../../src/nodes/shared/tpm-config.js";
import { SESSION_STATES } from "../../src/device/index.js";

describe("status dots", () => {
  it("gives every session state a dot, green only when connected", () => {
    for (const state of SESSION_STATES) {
      const view = statusFor({ state });
      assert.ok(view.key.length > 0);
      assert.equal(view.fill === "green", state === "connected", state);
    }
  });

  it("shows the retry delay in whole seconds", () => {
    assert.deepEqual(statusFor({ state: "retrying", nextRetryMs: 4600, attempt: 2 }).params, { seconds: 5 });
    assert.deepEqual(statusFor({ state: "retrying", nextRetryMs: 10 }).params, { seconds: 1 });
  });

  it("copies the state into msg.iothub without empty fields", () => {
    const event = {
      state: "connected" as const,
      deviceId: "d",
      hub: "h",
      registrationId: "r",
      error: undefined,
    };
    const iothub = iothubOf(event);
    assert.deepEqual(iothub, { state: "connected", deviceId: "d", hub: "h", registrationId: "r" });
    assert.notEqual(iothub, event);
  });
});

describe("twin in: merged desired document", () => {
  it("merges patches, removing properties set to null", () => {
    const doc = { interval: 5, thresholds: { high: 80, low: 10 }, mode: "auto", $version: 3 };
    const merged = mergeDesired(doc, { thresholds: { high: 90, low: null }, mode: null, $version: 4 });
    assert.deepEqual(merged, { interval: 5, thresholds: { high: 90 }, $version: 4 });
    assert.deepEqual(doc.thresholds, { high: 80, low: 10 }, "the original is unchanged");
  });
});

describe("telemetry options from a msg", () => {
  it("takes system and application properties", () => {
    const options = telemetryOptionsOf({
      messageId: "m-1",
      correlationId: "c-1",
      contentType: "text/csv",
      component: "thermostat1",
      properties: { line: "A", count: 3, flags: { a: true } },
    });
    assert.deepEqual(options, {
      messageId: "m-1",
      correlationId: "c-1",
      contentType: "text/csv",
      component: "thermostat1",
      properties: { line: "A", count: "3", flags: '{"a":true}' },
    });
  });

  it("refuses wrong types instead of ignoring them", () => {
    assert.throws(() => telemetryOptionsOf({ messageId: 42 }), /msg.messageId must be a string/);
    assert.throws(() => telemetryOptionsOf({ properties: ["a"] }), /msg.properties must be an object/);
  });
});

describe("TPM config", () => {
  it("turns the editor fields into a connection object", () => {
    assert.deepEqual(connectionSpecOf({ kind: "device", devicePath: "" }), { kind: "device" });
    assert.deepEqual(connectionSpecOf({ kind: "swtpm", host: "", port: "2321", ctrlPort: 2322 }), {
      kind: "swtpm",
      host: "127.0.0.1",
      port: 2321,
      ctrlPort: 2322,
    });
    assert.throws(() => connectionSpecOf({ kind: "mssim", host: "h", port: 70000 }), /1 to 65535/);
  });
});
