import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  SESSION_STATES,
  TRANSITIONS,
  assertTransition,
  canTransition,
  IllegalTransitionError,
} from "../../src/device/states.js";

describe("device session state machine", () => {
  it("follows the documented happy path idle -> provisioning -> provisioned -> connecting -> connected", () => {
    const path = ["idle", "provisioning", "provisioned", "connecting", "connected"] as const;
    for (let i = 1; i < path.length; i++)
      assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} -> ${path[i]}`);
  });

  it("reconnects through disconnected -> retrying -> connecting", () => {
    assert.ok(canTransition("connected", "disconnected"));
    assert.ok(canTransition("disconnected", "retrying"));
    assert.ok(canTransition("retrying", "connecting"));
  });

  it("retries DPS through provisioning -> retrying -> provisioning", () => {
    assert.ok(canTransition("provisioning", "retrying"));
    assert.ok(canTransition("retrying", "provisioning"));
  });

  it("re-registers when the hub refuses the identity (connecting -> provisioning) and on demand", () => {
    assert.ok(canTransition("connecting", "provisioning"));
    assert.ok(canTransition("connected", "provisioning"));
    assert.ok(canTransition("error", "provisioning"));
  });

  it("can stop from every state but idle itself", () => {
    for (const state of SESSION_STATES) {
      if (state === "idle") continue;
      assert.ok(canTransition(state, "idle"), `${state} -> idle`);
    }
  });

  it("refuses shortcuts that would skip a step", () => {
    assert.equal(canTransition("idle", "connected"), false);
    assert.equal(canTransition("idle", "connecting"), false);
    assert.equal(canTransition("provisioning", "connected"), false);
    assert.equal(canTransition("disconnected", "connected"), false);
    assert.equal(canTransition("retrying", "connected"), false);
    assert.equal(canTransition("connected", "connected"), false);
    assert.equal(canTransition("error", "connected"), false);
  });

  it("assertTransition throws a typed error naming both states", () => {
    assert.doesNotThrow(() => assertTransition("connected", "disconnected"));
    assert.throws(
      () => assertTransition("idle", "connected"),
      (error: unknown) =>
        error instanceof IllegalTransitionError &&
        error.from === "idle" &&
        error.to === "connected" &&
        /idle -> connected/.test(error.message),
    );
  });

  it("names only known states in the table", () => {
    for (const [from, targets] of Object.entries(TRANSITIONS)) {
      assert.ok((SESSION_STATES as readonly string[]).includes(from));
      for (const to of targets)
        assert.ok((SESSION_STATES as readonly string[]).includes(to), `${from} -> ${to}`);
    }
  });
});
