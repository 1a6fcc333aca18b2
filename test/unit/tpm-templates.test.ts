// Our EK and SRK templates against the Azure SDK's own (azure-iot-security-tpm), marshalled by tss.js: the
// bytes must be identical, or the same TPM would give another EK, SRK and registration id per client. The
// integration test (tpm-oracle) shows the same on TPMs; this one needs none and names the differing byte.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { ENDORSEMENT_KEY_TEMPLATE, STORAGE_ROOT_KEY_TEMPLATE } from "../../src/tpm/templates.js";

interface SdkTemplates {
  /** The SDK keeps its templates as static tss.js TPMT_PUBLIC objects (not part of its typings). */
  TpmSecurityClient: { _ekTemplate: { toBytes(): Uint8Array }; _srkTemplate: { toBytes(): Uint8Array } };
}

/** The SDK's TPM client, from the oracle's own folder (test/oracle) when it has one, else the project's. */
function sdkTpmPackage(): SdkTemplates {
  for (const from of [
    join(__dirname, "..", "oracle", "package.json"),
    join(__dirname, "..", "..", "package.json"),
  ]) {
    try {
      return createRequire(from)("azure-iot-security-tpm") as SdkTemplates;
    } catch {
      // not installed there
    }
  }
  throw new Error("the SDK's TPM client (azure-iot-security-tpm) is not installed");
}

const sdkTemplates = sdkTpmPackage().TpmSecurityClient;

describe("TPM key templates", () => {
  it("the EK template is the SDK's, byte for byte", () => {
    assert.equal(
      ENDORSEMENT_KEY_TEMPLATE.toString("hex"),
      Buffer.from(sdkTemplates._ekTemplate.toBytes()).toString("hex"),
    );
  });

  it("the SRK template is the SDK's, byte for byte", () => {
    assert.equal(
      STORAGE_ROOT_KEY_TEMPLATE.toString("hex"),
      Buffer.from(sdkTemplates._srkTemplate.toBytes()).toString("hex"),
    );
  });

  it("the EK needs the endorsement policy and no user auth; the SRK is the reverse", () => {
    // objectAttributes follow type (2 bytes) and nameAlg (2 bytes); TPMA_OBJECT bits of Part 2 §8.3
    const attributes = (template: Buffer) => template.readUInt32BE(4);
    const userWithAuth = 0x40;
    const adminWithPolicy = 0x80;
    assert.equal(attributes(ENDORSEMENT_KEY_TEMPLATE) & (userWithAuth | adminWithPolicy), adminWithPolicy);
    assert.equal(attributes(STORAGE_ROOT_KEY_TEMPLATE) & (userWithAuth | adminWithPolicy), userWithAuth);
  });
});
