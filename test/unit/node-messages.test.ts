// The adapters' message contract: runtime texts from the catalog (English first, the runtime's language when
// it has one), the errors the adapters raise, and the telemetry options a msg may carry.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { NodeAPI } from "node-red";
import { loadCatalog, runtimeIn } from "../support/node-red-i18n.js";
import { ConfigurationError } from "../../src/device/index.js";
import {
  CATALOG,
  englishText,
  errorText,
  localized,
  NodeConfigurationError,
  NodeInputError,
  translate,
} from "../../src/nodes/shared/messages.js";
import { telemetryOptionsOf } from "../../src/nodes/shared/telemetry-options.js";

describe("catalog texts", () => {
  before(() => loadCatalog(["de"]));

  it("puts every parameter into the English text, numbers too, and leaves one not given as it is", () => {
    assert.equal(
      englishText("azure-iot.error.readCertificate", { path: "/etc/dev.pem", reason: "EACCES" }),
      "cannot read the certificate file /etc/dev.pem: EACCES",
    );
    assert.equal(
      englishText("azure-iot.error.outboxFull", { size: 10, dropped: 2, policy: "drop-oldest" }),
      "telemetry outbox full (10 waiting): 2 message(s) dropped or refused so far (drop-oldest)",
    );
    assert.equal(
      englishText("azure-iot.error.readCertificate", { path: "/etc/dev.pem" }),
      "cannot read the certificate file /etc/dev.pem: __reason__",
    );
    assert.equal(englishText("azure-iot.error.envNotSet"), "environment variable __name__ is not set");
  });

  it("gives the key itself for a key the catalog does not have, or one that names a whole section", () => {
    assert.equal(englishText("azure-iot.error.noSuchKey"), "azure-iot.error.noSuchKey");
    assert.equal(englishText("no.such.section.at.all"), "no.such.section.at.all");
    assert.equal(englishText("azure-iot.error"), "azure-iot.error");
  });

  it("translates into the runtime's language, and falls back to English where the runtime has no text", () => {
    assert.equal(
      translate(runtimeIn("de"), "azure-iot.error.envNotSet", { name: "X" }),
      "Umgebungsvariable X ist nicht gesetzt",
    );
    // A runtime without our catalog answers with the key, bare or with its namespace.
    const bare = { _: (key: string) => key.slice(CATALOG.length + 1) } as unknown as NodeAPI;
    const namespaced = { _: (key: string) => key } as unknown as NodeAPI;
    for (const runtime of [bare, namespaced]) {
      assert.equal(
        translate(runtime, "azure-iot.error.envNotSet", { name: "X" }),
        "environment variable X is not set",
      );
    }
    assert.equal(
      errorText(runtimeIn("de"), "envNotSet", { name: "Y" }),
      "Umgebungsvariable Y ist nicht gesetzt",
    );
    assert.equal(errorText(bare, "envNotSet", { name: "Y" }), "environment variable Y is not set");
  });

  it("asks the runtime for the key in our catalog's namespace, with the parameters", () => {
    const asked: [string, unknown][] = [];
    const runtime = {
      _: (key: string, params: unknown) => {
        asked.push([key, params]);
        return "übersetzt";
      },
    } as unknown as NodeAPI;
    assert.equal(translate(runtime, "azure-iot.status.connected", { n: 1 }), "übersetzt");
    assert.deepEqual(asked, [[`${CATALOG}:azure-iot.status.connected`, { n: 1 }]]);
    assert.equal(CATALOG, "@provisio/node-red-azure-iot/azure-iot-device");
  });
});

describe("adapter errors", () => {
  it("a bad message is a NodeInputError (a TypeError) with its English text, key and parameters", () => {
    const error = new NodeInputError("optionNotString", { name: "messageId" });
    assert.ok(error instanceof TypeError);
    assert.equal(error.name, "NodeInputError");
    assert.equal(error.message, "msg.messageId must be a string");
    assert.equal(error.messageKey, "optionNotString");
    assert.deepEqual(error.messageParams, { name: "messageId" });
    assert.deepEqual(new NodeInputError("emptyPayload").messageParams, {});
  });

  it("a bad configuration is a ConfigurationError (never retried) with its English text", () => {
    const error = new NodeConfigurationError("envNotSet", { name: "SWTPM_PORT" });
    assert.ok(error instanceof ConfigurationError);
    assert.equal(error.message, "environment variable SWTPM_PORT is not set");
    assert.deepEqual(new NodeConfigurationError("deviceUnusable").messageParams, {});
  });

  it("localizes only errors that carry a message key, and hands back the same error", () => {
    const german = { _: () => "auf Deutsch" } as unknown as NodeAPI;
    const input = new NodeInputError("emptyPayload");
    assert.equal(localized(german, input), input);
    assert.equal(input.message, "auf Deutsch");
    const core = Object.assign(new Error("the hub refused the token"), { messageKey: 7 });
    assert.equal(localized(german, core).message, "the hub refused the token");
  });
});

describe("telemetry options from a msg", () => {
  it("takes each string option, contentEncoding too, and skips absent, null and empty ones", () => {
    assert.deepEqual(
      telemetryOptionsOf({
        messageId: "m-1",
        correlationId: "c-1",
        contentType: "application/json",
        contentEncoding: "utf-8",
        component: "thermostat1",
      }),
      {
        messageId: "m-1",
        correlationId: "c-1",
        contentType: "application/json",
        contentEncoding: "utf-8",
        component: "thermostat1",
      },
    );
    assert.deepEqual(telemetryOptionsOf({ messageId: null, correlationId: "", properties: null }), {});
    assert.deepEqual(telemetryOptionsOf({}), {});
  });

  it("refuses an option that is not a string, by its name", () => {
    for (const name of ["messageId", "correlationId", "contentType", "contentEncoding", "component"]) {
      assert.throws(
        () => telemetryOptionsOf({ [name]: 42 }),
        (error: unknown) =>
          error instanceof NodeInputError &&
          error.messageKey === "optionNotString" &&
          error.message === `msg.${name} must be a string`,
        name,
      );
    }
  });

  it("refuses properties that are not an object, and turns other values into JSON text", () => {
    for (const properties of ["nope", ["a"], 3]) {
      assert.throws(
        () => telemetryOptionsOf({ properties }),
        (error: unknown) => error instanceof NodeInputError && error.messageKey === "propertiesNotObject",
        JSON.stringify(properties),
      );
    }
    assert.deepEqual(
      telemetryOptionsOf({ properties: { a: "text", n: 1, no: null, list: [1] } }).properties,
      {
        a: "text",
        n: "1",
        no: "null",
        list: "[1]",
      },
    );
    assert.deepEqual(telemetryOptionsOf({ properties: {} }), { properties: {} });
  });
});
