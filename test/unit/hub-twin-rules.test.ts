// Twin rules the emulated IoT Hub enforces: key names, value limits, depth, section size, merge patch, etag.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  checkSectionLimits,
  mergePatch,
  nestingDepth,
  sectionSize,
  TwinRuleViolation,
  twinEtag,
  validateTwinSection,
} from "../../src/emulator/hub/twin-rules.js";

function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { property: "value" };
  for (let level = levels; level > 1; level -= 1) value = { [`level${level}`]: value };
  return { level1: value };
}

describe("twin rules", () => {
  it("refuses keys with '.', '$', '#', space or control characters, and keys over 1 KB", () => {
    for (const key of ["a.b", "$x", "a#b", "a b", "a\u0007b", "a\u0085b", "k".repeat(1025)]) {
      assert.throws(() => validateTwinSection({ [key]: 1 }), TwinRuleViolation, `key ${JSON.stringify(key)}`);
    }
    assert.throws(
      () => validateTwinSection({ outer: { "in.ner": 1 } }),
      /Error in Property\/Tag outer\.in\.ner/,
    );
    validateTwinSection({ ok_key: 1, "ünïcode-Ключ": "fine", ["k".repeat(1024)]: true });
  });

  it("refuses strings over 4 KB and integers outside ±2^52, accepts arrays and null", () => {
    assert.throws(() => validateTwinSection({ s: "x".repeat(4097) }), /maximum 4096 bytes/);
    assert.throws(() => validateTwinSection({ n: 4503599627370496 }), TwinRuleViolation);
    assert.throws(() => validateTwinSection({ n: -4503599627370497 }), TwinRuleViolation);
    validateTwinSection({ s: "x".repeat(4096), n: 4503599627370495, list: [1, { a: 2 }], gone: null });
  });

  it("allows $version/$metadata only at the root of a service document", () => {
    assert.throws(() => validateTwinSection({ $version: 3 }));
    validateTwinSection({ $version: 3, $metadata: {} }, true);
    assert.throws(() => validateTwinSection({ inner: { $version: 3 } }, true));
  });

  it("counts depth as nested objects below the section: ten levels pass, eleven do not", () => {
    assert.equal(nestingDepth({ a: 1 }), 0);
    assert.equal(nestingDepth(nested(10)), 10);
    checkSectionLimits(nested(10), "reported");
    assert.throws(() => checkSectionLimits(nested(11), "reported"), /maximum allowed depth of 10/);
  });

  it("sizes a section as key bytes plus values (numbers 8, booleans 4) and enforces 32 KB / 8 KB", () => {
    assert.equal(sectionSize({ ab: "xyz", n: 1, b: true, $version: 5, gone: null }), 2 + 3 + 1 + 8 + 1 + 4);
    const big: Record<string, string> = {};
    for (let index = 0; index < 8; index += 1) big[`k${index}`] = "x".repeat(4096);
    assert.throws(() => checkSectionLimits(big, "desired"), /exceeds the maximum of 32768 bytes/);
    const tags = { a: "x".repeat(4000), b: "x".repeat(4000), c: "x".repeat(500) };
    checkSectionLimits(tags, "desired");
    assert.throws(() => checkSectionLimits(tags, "tags"), /8192 bytes/);
  });

  it("merges patches: objects recursively, null deletes, arrays and scalars replace", () => {
    const base = { a: { x: 1, y: 2 }, list: [1, 2], keep: true };
    const merged = mergePatch(base, { a: { y: null, z: 3 }, list: [3], added: "new", $version: 9 });
    assert.deepEqual(merged, { a: { x: 1, z: 3 }, list: [3], keep: true, added: "new" });
    assert.deepEqual(base, { a: { x: 1, y: 2 }, list: [1, 2], keep: true }, "the target is not modified");
  });

  it("writes the etag as base64 of the 8-byte big-endian version", () => {
    assert.equal(twinEtag(7), "AAAAAAAAAAc=");
    assert.equal(twinEtag(1), "AAAAAAAAAAE=");
  });
});
