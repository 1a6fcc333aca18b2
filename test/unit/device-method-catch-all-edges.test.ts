// The catch-all's edges on a plain emitter: only `method_` events without a listener are taken (other events,
// symbols and handled names are emitted as before), a taken event counts as handled, and restoring puts back
// exactly what was there (an own `emit`, or none) unless someone wrapped `emit` after us.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it } from "node:test";
import {
  interceptUnhandledMethods,
  methodEmitterOf,
  type TransportMethodRequest,
} from "../../src/device/method-catch-all.js";

describe("direct-method catch-all edges", () => {
  it("takes only method events nobody listens to, and reports them handled", () => {
    const emitter = new EventEmitter();
    const taken: TransportMethodRequest[] = [];
    const named: unknown[] = [];
    emitter.on("method_restart", (request: unknown) => named.push(request));
    interceptUnhandledMethods(emitter, (request) => taken.push(request));
    assert.equal(emitter.emit("connected"), false, "another event without a listener is emitted as before");
    assert.equal(emitter.emit(Symbol("internal")), false);
    assert.equal(emitter.emit("method_restart", { requestId: "r-1" }), true);
    assert.deepEqual(named, [{ requestId: "r-1" }]);
    assert.deepEqual(taken, []);
    assert.equal(emitter.emit("method_unknown", { requestId: "r-2" }), true);
    assert.deepEqual(taken, [{ requestId: "r-2" }]);
  });

  it("finds no emitter on a transport that is not there", () => {
    assert.equal(methodEmitterOf(undefined), undefined);
  });

  it("restoring puts back an emitter's own emit", () => {
    const emitter = new EventEmitter();
    const own = function (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
      return EventEmitter.prototype.emit.call(this, event, ...args);
    };
    emitter.emit = own;
    const restore = interceptUnhandledMethods(emitter, () => undefined);
    restore();
    // eslint-disable-next-line @typescript-eslint/unbound-method -- compared, not called
    assert.equal(emitter.emit, own);
  });

  it("restoring leaves alone an emit someone wrapped after us", () => {
    const emitter = new EventEmitter();
    const restore = interceptUnhandledMethods(emitter, () => undefined);
    const later = (): boolean => false;
    emitter.emit = later;
    restore();
    // eslint-disable-next-line @typescript-eslint/unbound-method -- compared, not called
    assert.equal(emitter.emit, later);
  });
});
