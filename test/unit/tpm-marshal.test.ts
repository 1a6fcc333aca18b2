import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TpmError } from "../../src/tpm/errors.js";
import { sized, TpmReader, TpmWriter } from "../../src/tpm/marshal.js";

function isTruncation(what: string, wanted: number, at: number) {
  return (error: unknown) =>
    error instanceof TpmError &&
    error.code === "TPM_PROTOCOL" &&
    error.message === `${what} is truncated (wanted ${wanted} bytes at ${at})`;
}

describe("TPM marshalling", () => {
  it("writes a u32 handle with its top bit set (0x80000001) and -1 as ffffffff", () => {
    const bytes = new TpmWriter().u32(0x80000001).u32(-1).toBuffer();
    assert.equal(bytes.toString("hex"), "80000001ffffffff");
  });

  it("keeps only the low byte of a u8", () => {
    assert.equal(new TpmWriter().u8(0x1ab).u8(0).toBuffer().toString("hex"), "ab00");
  });

  it("writes a TPM2B of 65535 bytes and refuses one of 65536 with a RangeError naming the length", () => {
    const largest = new TpmWriter().sized(Buffer.alloc(0xffff, 7)).toBuffer();
    assert.equal(largest.length, 2 + 0xffff);
    assert.equal(largest.readUInt16BE(0), 0xffff);
    assert.throws(() => new TpmWriter().sized(Buffer.alloc(0x10000)), {
      name: "RangeError",
      message: "TPM2B too long: 65536 bytes",
    });
  });

  it("sized() prefixes the size, an empty buffer included", () => {
    assert.equal(sized(Buffer.from("abc")).toString("hex"), "0003616263");
    assert.equal(sized(Buffer.alloc(0)).toString("hex"), "0000");
  });

  it("reads big-endian integers, tracks position and remaining, and returns copies", () => {
    const source = Buffer.from("01020304050607080909", "hex");
    const reader = new TpmReader(source);
    assert.equal(reader.position, 0);
    assert.equal(reader.remaining, 10);
    assert.equal(reader.u8(), 0x01);
    assert.equal(reader.u16(), 0x0203);
    assert.equal(reader.u32(), 0x04050607);
    assert.equal(reader.position, 7);
    assert.equal(reader.remaining, 3);
    const copy = reader.bytes(1);
    copy[0] = 0xee;
    assert.equal(source[7], 0x08, "changing what was read leaves the response alone");
    assert.equal(reader.rest().toString("hex"), "0909");
    assert.equal(reader.remaining, 0);
    assert.equal(reader.rest().length, 0, "rest() at the end is empty, not an error");
  });

  it("reads a TPM2B with and without its size prefix, and reads to the very last byte", () => {
    const data = Buffer.from("0002abcd0001ff", "hex");
    const reader = new TpmReader(data);
    assert.equal(reader.sizedWithPrefix().toString("hex"), "0002abcd");
    assert.equal(reader.position, 4);
    assert.equal(reader.sized().toString("hex"), "ff");
    assert.equal(reader.remaining, 0);
  });

  it("names what was truncated, how much was wanted and where, for each read past the end", () => {
    assert.throws(() => new TpmReader(Buffer.alloc(0), "EK public").u8(), isTruncation("EK public", 1, 0));
    assert.throws(() => new TpmReader(Buffer.alloc(1)).u16(), isTruncation("TPM data", 2, 0));
    const reader = new TpmReader(Buffer.from("00000003", "hex"), "quote");
    reader.u8();
    assert.throws(() => reader.u32(), isTruncation("quote", 4, 1));
    assert.equal(reader.position, 1, "a failed read does not move on");
    assert.throws(
      () => new TpmReader(Buffer.from("0005aa", "hex")).sizedWithPrefix(),
      isTruncation("TPM data", 7, 0),
    );
    assert.throws(() => new TpmReader(Buffer.from("0a", "hex")).bytes(-1), isTruncation("TPM data", -1, 0));
  });
});
