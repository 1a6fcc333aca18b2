// The configuration check, field by field: what is refused before anything is opened, with the message a
// user sees. What the real dependencies then do on the wire: device-dependencies-wire.test.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { checkConfig } from "../../src/device/dependencies.js";
import { ConfigurationError, ValidationError } from "../../src/device/errors.js";
import type { AttestationConfig, DeviceSessionConfig } from "../../src/device/config.js";

const key = Buffer.alloc(32, 3).toString("base64");
const dps = { idScope: "0ne00012345" };
const symmetric: AttestationConfig = { kind: "symmetricKey", registrationId: "dev-1", key };
const tpm: AttestationConfig = { kind: "tpm", connection: { kind: "device" } };

function refused(
  config: unknown,
  message: RegExp | string,
  kind: new (...args: never[]) => Error = ConfigurationError,
): void {
  assert.throws(
    () => checkConfig(config as DeviceSessionConfig),
    (error: Error) =>
      error instanceof kind &&
      (typeof message === "string" ? error.message === message : message.test(error.message)),
  );
}

function direct(hostName: unknown, deviceId: unknown, attestation?: AttestationConfig): unknown {
  return { hub: { direct: { hostName, deviceId } }, attestation };
}

const plainKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
  type: "pkcs8",
  format: "pem",
}) as string;
const encryptedKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
  type: "pkcs8",
  format: "pem",
  cipher: "aes-256-cbc",
  passphrase: "open sesame",
}) as string;
const cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

describe("checkConfig", () => {
  it("refuses a missing config, attestation or DPS settings by name", () => {
    for (const config of [null, undefined, "config"]) refused(config, "device session config is required");
    refused({ dps }, "attestation is required (tpm, symmetricKey or x509)");
    refused({ attestation: symmetric }, "dps settings are required (idScope, endpoint, transport)");
    refused({ dps, attestation: { kind: "tpm" } }, "a TPM attestation needs its TPM connection");
  });

  it("lists the hub transports when one is unknown", () => {
    refused(
      { dps, attestation: symmetric, hub: { transport: "coap" } },
      'unknown hub transport "coap": use amqp, amqp-ws, mqtt, mqtt-ws',
    );
  });

  it("takes each DPS transport; TPM anything but MQTT; a port except over amqp-ws", () => {
    for (const transport of ["amqp", "amqp-ws", "https", "mqtt"] as const) {
      assert.doesNotThrow(() => checkConfig({ dps: { ...dps, transport }, attestation: symmetric }));
    }
    for (const transport of ["amqp", "https"] as const) {
      assert.doesNotThrow(() =>
        checkConfig({ dps: { ...dps, transport, globalEndpoint: "localhost:8443" }, attestation: tpm }),
      );
    }
    assert.doesNotThrow(() =>
      checkConfig({ dps: { ...dps, transport: "amqp-ws", globalEndpoint: "dps.example" }, attestation: tpm }),
    );
  });

  it("checks a configured TPM registration id, and the registration id of a key or certificate with DPS", () => {
    refused(
      { dps, attestation: { ...tpm, registrationId: "bad id" } },
      /registration id "bad id"/,
      ValidationError,
    );
    assert.doesNotThrow(() => checkConfig({ dps, attestation: { ...tpm, registrationId: "gw-1" } }));
    refused({ dps, attestation: { ...symmetric, registrationId: "dev%1" } }, /not valid/, ValidationError);
    refused(
      { dps, attestation: { kind: "x509", registrationId: "dev%1", cert, key: plainKey } },
      /not valid/,
      ValidationError,
    );
  });

  it("takes a group key, and refuses a key that is not text", () => {
    assert.doesNotThrow(() =>
      checkConfig({ dps, attestation: { kind: "symmetricKey", registrationId: "dev-1", groupKey: key } }),
    );
    refused(
      { dps, attestation: { kind: "symmetricKey", registrationId: "dev-1", key: 42 } },
      "a symmetric key attestation needs a base64 key",
    );
  });

  it("needs both the certificate and the key, and opens the key (with its passphrase) once", () => {
    const needs = "an X.509 attestation needs the device certificate and its private key (PEM)";
    refused({ dps, attestation: { kind: "x509", registrationId: "d", cert, key: "" } }, needs);
    refused({ dps, attestation: { kind: "x509", registrationId: "d", cert: "", key: plainKey } }, needs);
    assert.doesNotThrow(() =>
      checkConfig({ dps, attestation: { kind: "x509", registrationId: "d", cert, key: plainKey } }),
    );
    assert.doesNotThrow(() =>
      checkConfig({
        dps,
        attestation: {
          kind: "x509",
          registrationId: "d",
          cert,
          key: encryptedKey,
          passphrase: "open sesame",
        },
      }),
    );
    refused(
      { dps, attestation: { kind: "x509", registrationId: "d", cert, key: "not a key" } },
      "the X.509 private key is not a readable PEM key (ERR_OSSL_UNSUPPORTED)",
    );
  });
});

describe("checkConfig of a direct hub connection", () => {
  it("takes the device id with the hub's own rules, not DPS's", () => {
    assert.doesNotThrow(() =>
      checkConfig(
        direct("hub.example", "dev%1", { ...symmetric, registrationId: "dev%1" }) as DeviceSessionConfig,
      ),
    );
    assert.doesNotThrow(() =>
      checkConfig(
        direct("hub.example", "dev%1", {
          kind: "x509",
          registrationId: "dev%1",
          cert,
          key: plainKey,
        }) as DeviceSessionConfig,
      ),
    );
  });

  it("takes a host name with a port or surrounding spaces, and refuses anything else", () => {
    for (const hostName of ["localhost:5671", " hub.example ", "my-hub.azure-devices.net"]) {
      assert.doesNotThrow(() => checkConfig(direct(hostName, "dev-1", symmetric) as DeviceSessionConfig));
    }
    for (const hostName of [
      undefined,
      "!hub.example",
      "hub.example!",
      "hub.example:",
      "hub.example:123456",
    ]) {
      refused(
        direct(hostName, "dev-1", symmetric),
        "the hub host name is required, e.g. my-hub.azure-devices.net",
      );
    }
  });

  it("refuses a missing device id or one with other characters, anywhere in it", () => {
    const message = "the device id is required: up to 128 letters, digits and - . % _ * ? ! ( ) , : = @ $ '";
    for (const deviceId of [undefined, 7, "#dev", "dev#", "d".repeat(129)]) {
      refused(direct("hub.example", deviceId, symmetric), message);
    }
  });

  it("names a missing attestation after the identity is checked", () => {
    refused(direct("hub.example", "dev-1"), "attestation is required (tpm, symmetricKey or x509)");
  });
});
