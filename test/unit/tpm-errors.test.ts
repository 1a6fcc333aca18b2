// TPM response codes in words, and the TpmError that carries them (pure logic). The names and numbers are
// those of TCG TPM 2.0 Library Part 2 §6.6.3 (format zero: TPM_RC_VER1 + n, TPM_RC_WARN + n; format one:
// TPM_RC_FMT1 + n with the number of a handle, session or parameter in bits 8 to 11).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { baseResponseCode, describeResponseCode, isFormatOne, TpmError } from "../../src/tpm/errors.js";

const VER1 = 0x100;
const WARN = 0x900;
const FMT1 = 0x080;

const formatZero: [number, string][] = [
  [VER1 + 0x000, "TPM_RC_INITIALIZE"],
  [VER1 + 0x001, "TPM_RC_FAILURE"],
  [VER1 + 0x003, "TPM_RC_SEQUENCE"],
  [VER1 + 0x025, "TPM_RC_AUTH_MISSING"],
  [VER1 + 0x043, "TPM_RC_COMMAND_CODE"],
  [VER1 + 0x046, "TPM_RC_NV_RANGE"],
  [VER1 + 0x048, "TPM_RC_NV_LOCKED"],
  [VER1 + 0x049, "TPM_RC_NV_AUTHORIZATION"],
  [VER1 + 0x04b, "TPM_RC_NV_SPACE"],
  [VER1 + 0x04c, "TPM_RC_NV_DEFINED"],
  [VER1 + 0x055, "TPM_RC_SENSITIVE"],
  [WARN + 0x002, "TPM_RC_OBJECT_MEMORY"],
  [WARN + 0x003, "TPM_RC_SESSION_MEMORY"],
  [WARN + 0x021, "TPM_RC_LOCKOUT"],
  [WARN + 0x022, "TPM_RC_RETRY"],
  [WARN + 0x023, "TPM_RC_NV_UNAVAILABLE"],
];

const formatOne: [number, string][] = [
  [0x01, "TPM_RC_ASYMMETRIC"],
  [0x02, "TPM_RC_ATTRIBUTES"],
  [0x03, "TPM_RC_HASH"],
  [0x04, "TPM_RC_VALUE"],
  [0x05, "TPM_RC_HIERARCHY"],
  [0x07, "TPM_RC_KEY_SIZE"],
  [0x08, "TPM_RC_MGF"],
  [0x09, "TPM_RC_MODE"],
  [0x0a, "TPM_RC_TYPE"],
  [0x0b, "TPM_RC_HANDLE"],
  [0x0c, "TPM_RC_KDF"],
  [0x0d, "TPM_RC_RANGE"],
  [0x0e, "TPM_RC_AUTH_FAIL"],
  [0x0f, "TPM_RC_NONCE"],
  [0x10, "TPM_RC_PP"],
  [0x12, "TPM_RC_SCHEME"],
  [0x15, "TPM_RC_SIZE"],
  [0x16, "TPM_RC_SYMMETRIC"],
  [0x17, "TPM_RC_TAG"],
  [0x18, "TPM_RC_SELECTOR"],
  [0x1a, "TPM_RC_INSUFFICIENT"],
  [0x1b, "TPM_RC_SIGNATURE"],
  [0x1c, "TPM_RC_KEY"],
  [0x1d, "TPM_RC_POLICY_FAIL"],
  [0x1f, "TPM_RC_INTEGRITY"],
  [0x20, "TPM_RC_TICKET"],
  [0x21, "TPM_RC_RESERVED_BITS"],
  [0x22, "TPM_RC_BAD_AUTH"],
  [0x23, "TPM_RC_EXPIRED"],
  [0x24, "TPM_RC_POLICY_CC"],
  [0x25, "TPM_RC_BINDING"],
  [0x26, "TPM_RC_CURVE"],
  [0x27, "TPM_RC_ECC_POINT"],
];

describe("TPM response codes", () => {
  it("names the format-zero errors and warnings by the specification's numbers", () => {
    for (const [code, name] of formatZero) {
      assert.equal(describeResponseCode(code), `${name}, 0x${code.toString(16)}`);
    }
  });

  it("names the format-one errors by the specification's numbers", () => {
    for (const [number, name] of formatOne) {
      assert.equal(describeResponseCode(FMT1 + number), `${name}, 0x${(FMT1 + number).toString(16)}`);
    }
  });

  it("says which handle, session or parameter a format-one code is about", () => {
    assert.equal(describeResponseCode(0x18b), "TPM_RC_HANDLE (handle 1), 0x18b");
    assert.equal(describeResponseCode(0x78b), "TPM_RC_HANDLE (handle 7), 0x78b");
    assert.equal(describeResponseCode(0x98e), "TPM_RC_AUTH_FAIL (session 1), 0x98e");
    assert.equal(describeResponseCode(0xf8e), "TPM_RC_AUTH_FAIL (session 7), 0xf8e");
    assert.equal(describeResponseCode(0x1df), "TPM_RC_INTEGRITY (parameter 1), 0x1df");
    assert.equal(describeResponseCode(0xfc4), "TPM_RC_VALUE (parameter 15), 0xfc4");
    assert.equal(describeResponseCode(0x08b), "TPM_RC_HANDLE, 0x8b");
  });

  it("calls a code it does not know unknown, in either format", () => {
    assert.equal(describeResponseCode(0x1d1), "TPM_RC_UNKNOWN (parameter 1), 0x1d1");
    assert.equal(describeResponseCode(0x16f), "TPM_RC_UNKNOWN, 0x16f");
  });

  it("tells the formats apart by bit 7 and strips the number from format-one codes only", () => {
    assert.equal(isFormatOne(0x080), true);
    assert.equal(isFormatOne(0x07f), false);
    assert.equal(isFormatOne(0x100), false);
    assert.equal(baseResponseCode(0x18b), 0x08b);
    assert.equal(baseResponseCode(0x9a2), 0x0a2);
    assert.equal(baseResponseCode(0xfc4), 0x084);
    assert.equal(baseResponseCode(0x14c), 0x14c);
    assert.equal(baseResponseCode(0x922), 0x922);
  });
});

describe("TpmError", () => {
  it("carries its code, command and response code, and is named TpmError", () => {
    const error = new TpmError("TPM_RESPONSE", "TPM2_Load failed", { command: "Load", responseCode: 0x1df });
    assert.ok(error instanceof Error);
    assert.equal(error.name, "TpmError");
    assert.equal(error.code, "TPM_RESPONSE");
    assert.equal(error.message, "TPM2_Load failed");
    assert.equal(error.command, "Load");
    assert.equal(error.responseCode, 0x1df);
    assert.equal(Object.hasOwn(error, "cause"), false, "no cause when none was given");
  });

  it("keeps a cause when one is given, and nothing else by default", () => {
    const cause = new Error("socket hang up");
    const error = new TpmError("TPM_TRANSPORT", "swtpm: socket hang up", { cause });
    assert.equal(error.cause, cause);
    const bare = new TpmError("TPM_CLOSED", "closed");
    assert.equal(bare.command, undefined);
    assert.equal(bare.responseCode, undefined);
    assert.equal(Object.hasOwn(bare, "cause"), false);
  });
});
