// The device config node's "In flight" field: empty means the session default, a whole number from 1 to
// 1000 is passed on, anything else is a named configuration error.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULTS } from "../../src/device/config.js";
import { sessionConfigOf, type DeviceNodeDef } from "../../src/nodes/shared/device-config.js";
import type { DpsConfigNode } from "../../src/nodes/shared/dps-config.js";

const dpsNode = { dpsConfig: () => ({ idScope: "0ne00012345" }) } as unknown as DpsConfigNode;

function configWith(telemetryWindow: string | number | undefined) {
  const def = {
    id: "device",
    type: "provisio-azure-device",
    name: "",
    z: "",
    dps: "dps",
    attestation: "symmetricKey",
    tpm: "",
    registrationId: "dev-1",
    certFile: "",
    keyFile: "",
    modelId: "",
    payload: "",
    outboxLimit: 100,
    outboxOverflow: "drop-oldest",
    telemetryWindow,
  } as DeviceNodeDef;
  return sessionConfigOf(def, { symmetricKey: "a2V5" }, dpsNode, undefined);
}

describe("device config node: messages in flight", () => {
  it("empty leaves the session default, a number is passed on", () => {
    assert.equal(configWith("").options?.telemetryWindow, undefined);
    assert.equal(configWith(undefined).options?.telemetryWindow, undefined);
    assert.equal(configWith("16").options?.telemetryWindow, 16);
    assert.equal(configWith(1).options?.telemetryWindow, 1);
    assert.ok(DEFAULTS.telemetryWindow > 1, "pipelined by default");
  });

  it("zero, fractions, words and more than 1000 are refused with a named error", () => {
    for (const bad of ["0", "2.5", "many", "1001", "-3"]) {
      assert.throws(() => configWith(bad), { messageKey: "windowRange" }, bad);
    }
  });
});
