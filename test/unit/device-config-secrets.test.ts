// A configuration error names the field that is wrong and never quotes the key, the passphrase or any part
// of them: such errors reach status text, logs and the Catch node.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { checkConfig } from "../../src/device/dependencies.js";
import { ConfigurationError } from "../../src/device/errors.js";
import { describeError } from "../../src/device/retryable.js";
import { DefaultRetryPolicy } from "../../src/device/retry-policy.js";
import type { AttestationConfig } from "../../src/device/config.js";

const dps = { idScope: "0ne00012345" };

/** The error checkConfig throws for this attestation (it must throw a ConfigurationError). */
function refusal(attestation: AttestationConfig): ConfigurationError {
  try {
    checkConfig({ dps, attestation });
  } catch (error) {
    assert.ok(error instanceof ConfigurationError, `a ConfigurationError, not ${String(error)}`);
    return error;
  }
  assert.fail("the configuration was accepted");
}

/** No run of 6 characters of the secret (whitespace and PEM armour aside) appears in the text. */
function assertQuotesNothingOf(text: string, secret: string): void {
  const material = secret.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  for (let i = 0; i + 6 <= material.length; i++) {
    const piece = material.slice(i, i + 6);
    if (/^[A-Za-z ]+$/.test(piece)) continue; // plain words ("Shared", "Access") may be in a message
    assert.ok(!text.includes(piece), `"${text}" quotes "${piece}" of the secret`);
  }
}

describe("configuration errors never quote a key", () => {
  const malformedKeys = [
    "HostName=hub.example.net;DeviceId=dev;SharedAccessKey=c2VjcmV0LWtleS1ieXRlcw==",
    "c2VjcmV0LWtleS1i eXRlcw==",
    "c2VjcmV0LWtleS1ieXRlcw==;",
    "%%c2VjcmV0LWtleS1ieXRlcw%%",
    "=c2VjcmV0LWtleS1ieXRlcw",
    "!!!!!!!!",
  ];

  for (const key of malformedKeys) {
    it(`refuses the malformed device key ${JSON.stringify(key.slice(0, 12))}… without quoting it`, () => {
      const error = refusal({ kind: "symmetricKey", registrationId: "dev-1", key });
      assert.match(error.message, /needs a base64 key/);
      assertQuotesNothingOf(error.message, key);
      assertQuotesNothingOf(describeError(error), key);
      assert.equal(new DefaultRetryPolicy().classify(error), "stop");
    });

    it(`refuses the malformed group key ${JSON.stringify(key.slice(0, 12))}… without quoting it`, () => {
      const error = refusal({ kind: "symmetricKey", registrationId: "dev-1", groupKey: key });
      assert.match(error.message, /needs a base64 group key/);
      assertQuotesNothingOf(error.message, key);
    });
  }

  it("accepts well-formed keys, padded or not, base64url too, with surrounding whitespace", () => {
    for (const key of ["c2VjcmV0LWtleS1ieXRlcw==", "c2VjcmV0LWtleS1ieXRlcw", "a-_b/+Q=", " c2VjcmV0\n"]) {
      assert.doesNotThrow(() =>
        checkConfig({ dps, attestation: { kind: "symmetricKey", registrationId: "d", key } }),
      );
    }
  });

  it("refuses an unreadable X.509 private key without quoting it", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    // a copy-paste accident: a line of the key is lost
    const lines = pem.trim().split("\n");
    const damaged = [...lines.slice(0, 1), ...lines.slice(2)].join("\n");
    const error = refusal({
      kind: "x509",
      registrationId: "dev-1",
      cert: "-----BEGIN CERTIFICATE-----",
      key: damaged,
    });
    assert.match(error.message, /X\.509 private key is not a readable PEM key/);
    assertQuotesNothingOf(error.message, pem);
    assertQuotesNothingOf(describeError(error), pem);
  });

  it("refuses an encrypted key with a wrong or missing passphrase, quoting neither key nor passphrase", () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = privateKey
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "right-pass-7731" })
      .toString();
    const wrong = refusal({
      kind: "x509",
      registrationId: "dev-1",
      cert: "-----BEGIN CERTIFICATE-----",
      key: pem,
      passphrase: "wrong-pass-9124",
    });
    assert.match(wrong.message, /wrong passphrase/);
    assertQuotesNothingOf(wrong.message, pem);
    assertQuotesNothingOf(wrong.message, "wrong-pass-9124");
    const missing = refusal({
      kind: "x509",
      registrationId: "dev-1",
      cert: "-----BEGIN CERTIFICATE-----",
      key: pem,
    });
    assert.match(missing.message, /set its passphrase/);
    assertQuotesNothingOf(missing.message, pem);
  });
});
