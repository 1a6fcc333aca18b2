import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeResponse, encodeCommand } from "../../src/tpm/command-engine.js";
import { TPM_CC, TPM_RH } from "../../src/tpm/constants.js";
import { baseResponseCode, describeResponseCode, TpmError } from "../../src/tpm/errors.js";
import { TpmReader, TpmWriter } from "../../src/tpm/marshal.js";

describe("TPM wire format", () => {
  it("writes big-endian integers and size-prefixed buffers", () => {
    const bytes = new TpmWriter()
      .u8(1)
      .u16(0x0203)
      .u32(0x04050607)
      .sized(Buffer.from([9, 9]))
      .toBuffer();
    assert.equal(bytes.toString("hex"), "01" + "0203" + "04050607" + "0002" + "0909");
  });

  it("reports a truncated response as a protocol error instead of throwing a RangeError", () => {
    const reader = new TpmReader(Buffer.from([0x00, 0x05, 0x01]), "test data");
    assert.throws(
      () => reader.sized(),
      (error: unknown) =>
        error instanceof TpmError && error.code === "TPM_PROTOCOL" && /truncated/.test(error.message),
    );
  });

  it("encodes a command with a password session exactly as TPM 2.0 Part 1 §18 lays it out", () => {
    const command = encodeCommand(TPM_CC.EvictControl, {
      handles: [TPM_RH.OWNER, 0x80000001],
      authorizations: [{ kind: "password" }],
      parameters: Buffer.from("81000001", "hex"),
    });
    const expected =
      "8002" + // TPM_ST_SESSIONS
      "00000023" + // size 35
      "00000120" + // TPM_CC_EvictControl
      "40000001" + // TPM_RH_OWNER
      "80000001" + // object handle
      "00000009" + // authorization area size
      "40000009" + // TPM_RS_PW
      "0000" + // empty nonce
      "01" + // continueSession
      "0000" + // empty password
      "81000001"; // persistent handle parameter
    assert.equal(command.toString("hex"), expected);
  });

  it("encodes a command without sessions with the no-sessions tag", () => {
    const command = encodeCommand(TPM_CC.FlushContext, { parameters: Buffer.from("03000000", "hex") });
    assert.equal(command.toString("hex"), "8001" + "0000000e" + "00000165" + "03000000");
  });

  it("turns a non-zero response code into a TpmError naming the command and the code", () => {
    const response = Buffer.from("8001" + "0000000a" + "000001df", "hex"); // TPM_RC_INTEGRITY, parameter 1
    assert.throws(
      () => decodeResponse("ActivateCredential", response, {}),
      (error: unknown) =>
        error instanceof TpmError &&
        error.code === "TPM_RESPONSE" &&
        error.responseCode === 0x1df &&
        error.command === "ActivateCredential" &&
        /TPM_RC_INTEGRITY \(parameter 1\)/.test(error.message),
    );
  });

  it("rejects a response whose header size disagrees with its length", () => {
    const response = Buffer.from("8001" + "00000020" + "00000000", "hex");
    assert.throws(
      () => decodeResponse("GetRandom", response, {}),
      (error: unknown) => error instanceof TpmError && error.code === "TPM_PROTOCOL",
    );
  });

  it("reads response handles, then the parameter area of a session response", () => {
    const response = Buffer.from(
      "8002" + "00000019" + "00000000" + "80000002" + "00000002" + "abcd" + "0000" + "01" + "0000",
      "hex",
    );
    const decoded = decodeResponse("Load", response, { responseHandleCount: 1 });
    assert.deepEqual(decoded.handles, [0x80000002]);
    assert.equal(decoded.parameters.rest().toString("hex"), "abcd");
  });

  it("names format-one and format-zero response codes", () => {
    assert.equal(baseResponseCode(0x18b), 0x08b);
    assert.match(describeResponseCode(0x18b), /^TPM_RC_HANDLE \(handle 1\)/);
    assert.match(describeResponseCode(0x98e), /^TPM_RC_AUTH_FAIL \(session 1\)/);
    assert.match(describeResponseCode(0x101), /^TPM_RC_FAILURE/);
  });
});
