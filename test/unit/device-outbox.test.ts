import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Outbox } from "../../src/device/outbox.js";

describe("telemetry outbox", () => {
  it("gives messages back in the order they came", () => {
    const outbox = new Outbox<number>({ capacity: 5 });
    for (const n of [1, 2, 3]) assert.deepEqual(outbox.push(n), { accepted: true });
    assert.deepEqual([outbox.shift(), outbox.shift(), outbox.shift(), outbox.shift()], [1, 2, 3, undefined]);
  });

  it("drop-oldest keeps the newest messages and counts what it dropped", () => {
    const outbox = new Outbox<number>({ capacity: 3, overflow: "drop-oldest" });
    for (const n of [1, 2, 3]) outbox.push(n);
    assert.deepEqual(outbox.push(4), { accepted: true, dropped: 1 });
    assert.deepEqual(outbox.push(5), { accepted: true, dropped: 2 });
    assert.equal(outbox.size, 3);
    assert.equal(outbox.dropped, 2);
    assert.deepEqual(outbox.drain(), [3, 4, 5]);
  });

  it("reject-new keeps the oldest messages and refuses the new one", () => {
    const outbox = new Outbox<number>({ capacity: 2, overflow: "reject-new" });
    outbox.push(1);
    outbox.push(2);
    assert.deepEqual(outbox.push(3), { accepted: false });
    assert.equal(outbox.dropped, 1);
    assert.deepEqual(outbox.drain(), [1, 2]);
  });

  it("a message put back after a failed send goes first, and the bound still holds", () => {
    const outbox = new Outbox<string>({ capacity: 2 });
    outbox.push("a");
    outbox.push("b");
    const inFlight = outbox.shift()!;
    outbox.push("c");
    assert.deepEqual(outbox.requeue([inFlight]), ["c"]);
    assert.equal(outbox.dropped, 1);
    assert.deepEqual(outbox.drain(), ["a", "b"]);
    assert.deepEqual(outbox.requeue(["x"]), []);
    assert.equal(outbox.peek(), "x");
  });

  it("several messages put back keep their order ahead of the waiting ones", () => {
    const outbox = new Outbox<string>({ capacity: 4 });
    for (const item of ["a", "b", "c", "d"]) outbox.push(item);
    const inFlight = [outbox.shift()!, outbox.shift()!];
    outbox.push("e");
    outbox.push("f");
    assert.deepEqual(outbox.requeue(inFlight), ["e", "f"]);
    assert.equal(outbox.dropped, 2);
    assert.deepEqual(outbox.drain(), ["a", "b", "c", "d"]);
  });

  it("drain empties it", () => {
    const outbox = new Outbox<number>();
    outbox.push(1);
    assert.deepEqual(outbox.drain(), [1]);
    assert.equal(outbox.size, 0);
  });

  it("refuses an unusable capacity or policy", () => {
    assert.throws(() => new Outbox({ capacity: 0 }), RangeError);
    assert.throws(() => new Outbox({ capacity: 1.5 }), RangeError);
    assert.throws(() => new Outbox({ overflow: "block" as never }), RangeError);
  });
});
