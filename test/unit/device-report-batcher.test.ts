// Reported-properties batching: merged patches must do exactly what the patches did in turn, and updates made
// while one is on its way go together in the next PATCH.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ReportBatcher,
  composes,
  mergePatches,
  type ReportedPatch,
} from "../../src/device/report-batcher.js";

/** JSON merge patch (RFC 7386), as the hub applies a reported-properties PATCH. */
function apply(target: ReportedPatch, patch: ReportedPatch): ReportedPatch {
  const result: ReportedPatch = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else if (typeof value === "object" && !Array.isArray(value)) {
      const current = result[key];
      const base =
        typeof current === "object" && current !== null && !Array.isArray(current)
          ? (current as ReportedPatch)
          : {};
      result[key] = apply(base, value as ReportedPatch);
    } else result[key] = value;
  }
  return result;
}

describe("reported-properties batching", () => {
  const target: ReportedPatch = { a: { b: 1, keep: true }, c: 3, d: "x" };
  const sequences: ReportedPatch[][] = [
    [{ a: { b: 2 } }, { a: { e: 5 } }, { c: null }],
    [{ a: null }, { c: 4 }],
    [{ c: { deep: 1 } }, { c: { deeper: { x: 1 } } }, { c: { deeper: null } }],
    [{ d: null }, { a: { b: null } }, { a: 7 }],
  ];

  it("a merged patch does what the patches did in turn, whenever they compose", () => {
    for (const patches of sequences) {
      let merged: ReportedPatch = {};
      for (const patch of patches) {
        assert.ok(composes(merged, patch), JSON.stringify(patches));
        merged = mergePatches(merged, patch);
      }
      const inTurn = patches.reduce(apply, target);
      assert.deepEqual(apply(target, merged), inTurn, JSON.stringify(patches));
    }
  });

  it("an object over a key set to null or a value does not compose (merging would not replace)", () => {
    assert.equal(composes({ a: null }, { a: { c: 2 } }), false);
    assert.equal(composes({ a: 5 }, { a: { c: 2 } }), false);
    assert.equal(composes({ a: { b: 1 } }, { a: { c: 2 } }), true);
    assert.equal(composes({ x: { a: null } }, { x: { a: { c: 2 } } }), false);
  });

  it("updates made while one is on its way go in one PATCH; a non-composing one waits for the next", async () => {
    const sent: ReportedPatch[] = [];
    const answers: Array<() => void> = [];
    let version = 1;
    const batcher = new ReportBatcher(
      (patch) =>
        new Promise<number>((resolve) => {
          sent.push(patch);
          answers.push(() => resolve(++version));
        }),
    );
    const first = batcher.report({ n: 1 });
    const rest = [batcher.report({ n: 2 }), batcher.report({ m: { x: 1 } }), batcher.report({ n: 3 })];
    const apart = batcher.report({ n: { o: 1 } });
    assert.deepEqual(sent, [{ n: 1 }], "one PATCH at a time");
    answers.shift()?.();
    assert.equal(await first, 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent[1], { n: 3, m: { x: 1 } });
    answers.shift()?.();
    assert.deepEqual(await Promise.all(rest), [3, 3, 3]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent[2], { n: { o: 1 } });
    answers.shift()?.();
    assert.equal(await apart, 4);
  });

  it("a failed PATCH rejects every update of its batch, and the next batch still goes", async () => {
    let calls = 0;
    const batcher = new ReportBatcher(() => {
      calls += 1;
      return calls === 1 ? Promise.reject(new Error("refused")) : Promise.resolve(9);
    });
    const outcomes = await Promise.allSettled([batcher.report({ a: 1 }), batcher.report({ b: 1 })]);
    assert.equal(outcomes[0].status, "rejected");
    assert.equal(outcomes[1].status, "fulfilled");
  });
});
