import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "../../src/device/errors.js";
import {
  Limits,
  twinDepth,
  twinSize,
  validateIdScope,
  validateMessageId,
  validateRegistrationId,
  validateTelemetry,
  validateTwinKey,
  validateTwinPatch,
} from "../../src/device/validation.js";

function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < depth; i++) value = { [`level${i}`]: value };
  return value;
}

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof ValidationError && pattern.test(error.message));
}

describe("ID scope", () => {
  it("accepts 0ne + 8 hex digits in any case and trims", () => {
    assert.equal(validateIdScope("0ne00012345"), "0ne00012345");
    assert.equal(validateIdScope("0NE00ABCDEF"), "0NE00ABCDEF");
    assert.equal(validateIdScope(" 0ne0001A2b3 "), "0ne0001A2b3");
  });

  it("refuses other shapes with a message that shows the expected form", () => {
    rejects(() => validateIdScope("0ne0001234"), /0ne00012345/);
    rejects(() => validateIdScope("0ne000123456"), /8 hexadecimal/);
    rejects(() => validateIdScope("1ne00012345"), /not valid/);
    rejects(() => validateIdScope("0ne0001234g"), /not valid/);
    rejects(() => validateIdScope(""), /required/);
    rejects(() => validateIdScope(undefined), /required/);
  });

  it("refuses a scope with anything before 0ne, and calls one of only spaces missing", () => {
    rejects(() => validateIdScope("x0ne00012345"), /not valid/);
    rejects(() => validateIdScope("   "), /required/);
  });
});

describe("registration id", () => {
  it("accepts DPS's alphabet and refuses the rest", () => {
    assert.equal(validateRegistrationId("gateway-01.site_a:b"), "gateway-01.site_a:b");
    rejects(() => validateRegistrationId("has space"), /not valid/);
    rejects(() => validateRegistrationId("ends-with-dot."), /not valid/);
    rejects(() => validateRegistrationId("x".repeat(129)), /maximum is 128/);
    rejects(() => validateRegistrationId(""), /required/);
  });

  it("accepts exactly 128 characters and calls a value that is not text missing", () => {
    assert.equal(validateRegistrationId("r".repeat(128)), "r".repeat(128));
    rejects(() => validateRegistrationId(undefined), /required/);
    rejects(() => validateRegistrationId(12345), /required/);
  });
});

describe("telemetry size", () => {
  it("accepts exactly 256 KB and refuses one byte more, properties included", () => {
    assert.equal(validateTelemetry(Buffer.alloc(Limits.telemetryBytes)), Limits.telemetryBytes);
    rejects(() => validateTelemetry(Buffer.alloc(Limits.telemetryBytes + 1)), /262145 bytes.*256 KB/);
    rejects(() => validateTelemetry(Buffer.alloc(Limits.telemetryBytes - 2), { ab: "c" }), /256 KB/);
  });

  it("counts strings as UTF-8 and objects as JSON", () => {
    assert.equal(validateTelemetry("é"), 2);
    assert.equal(validateTelemetry({ a: 1 }), 7);
  });

  it("counts each property's name and text as UTF-8", () => {
    assert.equal(validateTelemetry("ab", { unit: "°C", n: "42" }), 2 + 4 + 3 + 1 + 2);
  });

  it("sends an object whose JSON is nothing as an empty body", () => {
    assert.equal(validateTelemetry({ toJSON: () => undefined }), 0);
  });

  it("refuses a missing or unserialisable payload", () => {
    rejects(() => validateTelemetry(undefined), /missing/);
    rejects(() => validateTelemetry(null), /missing/);
    rejects(() => validateTelemetry(() => 1), /function/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    rejects(() => validateTelemetry(circular), /JSON/);
  });
});

describe("message ids", () => {
  it("accepts IoT Hub's characters up to 128 long", () => {
    assert.equal(
      validateMessageId("abc-123:x.y+z%_#*?!(),=@;$'", "messageId"),
      "abc-123:x.y+z%_#*?!(),=@;$'",
    );
    rejects(() => validateMessageId("a".repeat(129), "messageId"), /1 to 128/);
    assert.equal(validateMessageId("a".repeat(128), "correlationId"), "a".repeat(128));
    rejects(() => validateMessageId("has space", "correlationId"), /correlationId/);
  });
});

describe("twin keys", () => {
  it("refuses '.', '$', '#', space and control characters, and names over 1 KB", () => {
    assert.doesNotThrow(() => validateTwinKey("firmwareVersion"));
    for (const key of ["a.b", "$version", "a b", "tab\there", "nul\u0000", "c1\u0085", "hash#"]) {
      rejects(() => validateTwinKey(key), /must not contain/);
    }
    rejects(() => validateTwinKey("k".repeat(1025)), /1024 bytes/);
    assert.doesNotThrow(() => validateTwinKey("k".repeat(1024)));
    rejects(() => validateTwinKey(""), /empty/);
  });

  it("quotes only the first 64 characters of a name that is too long", () => {
    assert.throws(
      () => validateTwinKey("k".repeat(1025)),
      (error: Error) =>
        error.message.includes(`"${"k".repeat(64)}..."`) && !error.message.includes("k".repeat(65)),
    );
  });
});

describe("twin patches", () => {
  it("names a circular value instead of overflowing the stack; a shared (non-circular) object is fine", () => {
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = loop;
    assert.throws(
      () => validateTwinPatch({ outer: loop }),
      (error: Error) => error instanceof ValidationError && /"outer\.self" .*circular/.test(error.message),
    );
    const list: unknown[] = [];
    list.push({ back: list });
    assert.throws(() => validateTwinPatch({ list }), /circular/);
    const shared = { x: 1 };
    assert.doesNotThrow(() => validateTwinPatch({ one: shared, two: shared }));
  });

  it("names a patch that refers back to itself at the first property that does", () => {
    const patch: Record<string, unknown> = { a: 1 };
    patch.self = patch;
    assert.throws(
      () => validateTwinPatch(patch),
      (error: Error) =>
        error instanceof ValidationError && /^twin property "self" refers back/.test(error.message),
    );
  });

  it("checks each item of an array and names it by its index", () => {
    rejects(
      () => validateTwinPatch({ list: [1, Number.NaN] }),
      /^twin property "list\[1\]" is not a finite number$/,
    );
  });

  it("accepts a plain object, with null meaning delete", () => {
    const patch = {
      firmware: "1.0",
      telemetry: { interval: 5, enabled: true },
      obsolete: null,
      list: [1, "a"],
    };
    assert.equal(validateTwinPatch(patch), patch);
  });

  it("refuses anything that is not an object of properties", () => {
    rejects(() => validateTwinPatch(null), /not null/);
    rejects(() => validateTwinPatch([1]), /not an array/);
    rejects(() => validateTwinPatch("x"), /not string/);
    rejects(() => validateTwinPatch(5), /not number/);
    rejects(() => validateTwinPatch(Buffer.from("x")), /must be an object/);
  });

  it("names the offending nested key", () => {
    rejects(() => validateTwinPatch({ outer: { "bad.key": 1 } }), /outer\.bad\.key/);
  });

  it("allows 10 levels of nesting and refuses 11", () => {
    assert.equal(twinDepth(nested(10)), 10);
    assert.equal(twinDepth({ a: null, b: [1, { c: null }] }), 2);
    assert.doesNotThrow(() => validateTwinPatch(nested(10)));
    rejects(() => validateTwinPatch(nested(11)), /nested 11 levels deep; the maximum is 10/);
  });

  it("counts size as the hub does and refuses over 32 KB", () => {
    assert.equal(twinSize({ ab: "cd", n: 1, b: true }), 2 + 2 + 1 + 8 + 1 + 4);
    const big = { blob1: "x".repeat(4000), blob2: "x".repeat(4000) };
    const patch: Record<string, unknown> = {};
    for (let i = 0; i < 9; i++) patch[`part${i}`] = big;
    rejects(() => validateTwinPatch(patch), /bytes; IoT Hub accepts at most 32768 bytes/);
  });

  it("accepts exactly 32 KB and refuses one byte more; counts an array's items, not its indexes", () => {
    assert.equal(twinSize({ list: [1, "ab"] }), 4 + 8 + 2);
    const patch: Record<string, unknown> = {};
    for (let i = 0; i < 8; i++) patch[`k${i}`] = "x".repeat(4094);
    assert.equal(twinSize(patch), 32 * 1024);
    assert.equal(validateTwinPatch(patch), patch);
    rejects(() => validateTwinPatch({ ...patch, z: "" }), /twin patch is 32769 bytes/);
  });

  it("refuses strings over 4 KB and non-finite numbers", () => {
    rejects(() => validateTwinPatch({ s: "x".repeat(4097) }), /longer than 4096 bytes/);
    assert.doesNotThrow(() => validateTwinPatch({ s: "é".repeat(2048) }));
    rejects(() => validateTwinPatch({ n: Number.NaN }), /finite/);
    rejects(() => validateTwinPatch({ f: () => 1 }), /function/);
  });
});
