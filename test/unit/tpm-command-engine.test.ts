// What the command engine says about itself and about broken responses (pure logic: no TPM is contacted).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CommandEngine, decodeResponse } from "../../src/tpm/command-engine.js";
import { TpmError } from "../../src/tpm/errors.js";

const protocolError = (message: string) => (error: unknown) =>
  error instanceof TpmError && error.code === "TPM_PROTOCOL" && error.message === message;

describe("TPM command engine (no TPM)", () => {
  it("describes where its TPM is, and names it when a call comes after close()", async () => {
    const engine = new CommandEngine({ kind: "swtpm", host: "127.0.0.1", port: 2321, ctrlPort: 2322 });
    assert.equal(engine.description, "swtpm 127.0.0.1:2321");
    await engine.close();
    await assert.rejects(
      engine.exclusive(() => Promise.resolve("never run")),
      (error: unknown) =>
        error instanceof TpmError &&
        error.code === "TPM_CLOSED" &&
        error.message === "swtpm 127.0.0.1:2321: closed",
    );
  });

  it("names the command and both lengths when the size field disagrees", () => {
    assert.throws(
      () => decodeResponse("GetRandom", Buffer.from("8001" + "00000020" + "00000000", "hex"), {}),
      protocolError("GetRandom: response size 32 does not match 10 bytes"),
    );
  });

  it("names the command's response when it is shorter than a header", () => {
    assert.throws(
      () => decodeResponse("ReadPublic", Buffer.from("8001" + "0000", "hex"), {}),
      protocolError("ReadPublic response is truncated (wanted 4 bytes at 2)"),
    );
  });

  it("names the command's response parameters when they are cut short", () => {
    // a session response whose parameterSize (4) is larger than what follows (2 bytes)
    const withSessions = Buffer.from("8002" + "00000010" + "00000000" + "00000004" + "abcd", "hex");
    assert.throws(
      () => decodeResponse("HMAC", withSessions, {}).parameters.u32(),
      protocolError("HMAC response is truncated (wanted 4 bytes at 14)"),
    );
    const parameters = decodeResponse(
      "HMAC",
      Buffer.from("8002" + "0000000f" + "00000000" + "00000001" + "ab", "hex"),
      {},
    ).parameters;
    assert.throws(
      () => parameters.u16(),
      protocolError("HMAC response parameters is truncated (wanted 2 bytes at 0)"),
    );
    const noSessions = decodeResponse(
      "GetRandom",
      Buffer.from("8001" + "0000000b" + "00000000" + "ab", "hex"),
      {},
    ).parameters;
    assert.throws(
      () => noSessions.u16(),
      protocolError("GetRandom response parameters is truncated (wanted 2 bytes at 0)"),
    );
  });
});
