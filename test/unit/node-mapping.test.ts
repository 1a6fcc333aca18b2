import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { loadCatalog, runtimeIn } from "../support/node-red-i18n.js";
import { configField } from "../../src/nodes/shared/config-field.js";
import { sessionConfigOf, type DeviceNodeDef } from "../../src/nodes/shared/device-config.js";
import { dpsConfigOf } from "../../src/nodes/shared/dps-config.js";
import { localized, NodeConfigurationError } from "../../src/nodes/shared/messages.js";
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
    assert.throws(() => connectionSpecOf({ kind: "mssim", host: "h", port: "2321x" }), /1 to 65535/);
  });
});

describe("config fields that name an environment variable", () => {
  // Node-RED leaves a field that is exactly "${NAME}" unchanged when the variable is not set.
  it("report the variable that is not set, not a bad value", () => {
    assert.throws(
      () => connectionSpecOf({ kind: "swtpm", host: "127.0.0.1", port: "${SWTPM_PORT}", ctrlPort: 2322 }),
      (error: Error) => {
        assert.ok(error instanceof NodeConfigurationError);
        assert.equal(error.message, "environment variable SWTPM_PORT is not set");
        return true;
      },
    );
    assert.throws(
      () => connectionSpecOf({ kind: "swtpm", host: "${SWTPM_HOST}", port: 2321, ctrlPort: 2322 }),
      /environment variable SWTPM_HOST is not set/,
    );
    assert.throws(
      () =>
        dpsConfigOf(
          {
            globalEndpoint: "localhost:25671",
            idScope: " ${AZURE_IOT_ID_SCOPE} ",
            transport: "amqp",
            caSource: "none",
            caFile: "",
          } as Parameters<typeof dpsConfigOf>[0],
          {},
        ),
      /environment variable AZURE_IOT_ID_SCOPE is not set/,
    );
  });

  it("leave other text alone, including a variable inside a longer value", () => {
    assert.equal(configField("  localhost:25671 "), "localhost:25671");
    assert.equal(configField(2321), "2321");
    assert.equal(configField(undefined), "");
    assert.equal(configField("prefix-${NAME}"), "prefix-${NAME}");
  });
});

describe("adapter errors in the runtime's language", () => {
  before(() => loadCatalog(["de", "ja"]));

  it("translates an unset variable into German and Japanese, with the variable's name", () => {
    const unset = () => new NodeConfigurationError("envNotSet", { name: "SWTPM_PORT" });
    assert.equal(
      localized(runtimeIn("de"), unset()).message,
      "Umgebungsvariable SWTPM_PORT ist nicht gesetzt",
    );
    assert.equal(localized(runtimeIn("ja"), unset()).message, "環境変数 SWTPM_PORT が設定されていません");
    assert.equal(
      localized(runtimeIn("en-US"), unset()).message,
      "environment variable SWTPM_PORT is not set",
    );
  });

  it("says what is wrong with a device connection string in German and Japanese, never quoting it", () => {
    const key = Buffer.from("a-device-key-that-must-not-show").toString("base64");
    const bareKey = key.replace(/=/g, "");
    const def = {
      id: "device",
      type: "provisio-azure-device",
      identity: "connectionString",
    } as DeviceNodeDef;
    const problemOf = (connectionString: string) => {
      try {
        sessionConfigOf(def, { connectionString }, undefined, undefined);
      } catch (error) {
        assert.ok(error instanceof NodeConfigurationError, String(error));
        return error;
      }
      assert.fail("the connection string was taken");
    };
    const cases = [
      [`HostName=h;SharedAccessKey=${key}`, "connectionStringMissing", /DeviceId/],
      [`HostName=h;DeviceId=d;${bareKey}`, "connectionStringNotPairs", /Name=/],
      [`HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=${key}`, "connectionStringModule", /ModuleId/],
      [
        `HostName=h;DeviceId=d;SharedAccessSignature=sr=${key}`,
        "connectionStringSignature",
        /SharedAccessSignature/,
      ],
      ["HostName=h;DeviceId=d;x509=true", "connectionStringX509", /x509=true/],
      [
        `HostName=h;DeviceId=d;SharedAccessKey=${key};GatewayHostName=e`,
        "connectionStringEdge",
        /GatewayHostName/,
      ],
      [
        `HostName=h;SharedAccessKeyName=owner;SharedAccessKey=${key}`,
        "connectionStringHubPolicy",
        /SharedAccessKeyName/,
      ],
    ] as const;
    for (const [connectionString, messageKey, names] of cases) {
      assert.equal(problemOf(connectionString).messageKey, messageKey);
      const english = problemOf(connectionString).message;
      assert.match(english, /^the device connection string cannot be used: /);
      for (const [lang, opening] of [
        ["de", "die Geräte-Verbindungszeichenfolge ist nicht verwendbar: "],
        ["ja", "デバイス接続文字列を使用できません: "],
      ] as const) {
        const text = localized(runtimeIn(lang), problemOf(connectionString)).message;
        assert.ok(text.startsWith(opening), `${lang}: ${text}`);
        assert.match(text, names, `${lang} names the part: ${text}`);
        assert.ok(!text.includes("cannot") && !text.includes(" use "), `${lang} has no English: ${text}`);
        assert.ok(!text.includes(bareKey) && !english.includes(bareKey), "never the key");
      }
    }
    assert.match(problemOf(`SharedAccessKey=${key}`).message, /has no HostName, DeviceId$/);
  });

  it("leaves errors of the framework-free core in English", () => {
    const core = new Error("the hub refused the token");
    assert.equal(localized(runtimeIn("de"), core).message, "the hub refused the token");
  });
});
