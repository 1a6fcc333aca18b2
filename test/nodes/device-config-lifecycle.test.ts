// The device configuration node's life, as Node-RED's MQTT broker node lives: connect-on-deploy decided once the
// flows have started, the session closed when its last user is removed, and a redeploy while the hub is
// unreachable that loses nothing silently (one warning with the count, each waiting msg to a Catch node; on a
// full stop the Catch nodes stop too, and Node-RED logs each message's error instead).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { offlineTelemetryFlow, unreachableDpsNode } from "../support/device-flow.js";
import { getNode, helper, loadFlow, startServer, stopServer } from "../support/node-red.js";

const unreachableDps = unreachableDpsNode();
const device = {
  id: "device",
  type: "provisio-azure-device",
  dps: "dps",
  attestation: "symmetricKey",
  registrationId: "dev-1",
};
const credentials = { device: { symmetricKey: Buffer.alloc(32, 1).toString("base64") } };

interface SessionView {
  state: string;
}
const sessionOf = (): SessionView | undefined =>
  (getNode("device") as unknown as { session?: SessionView }).session;

describe("the device configuration node's lifecycle", () => {
  before(startServer);
  after(stopServer);

  it("connects on deploy only when no provision node says otherwise, decided once the flows started", async () => {
    await loadFlow(
      [
        { id: "tab", type: "tab" },
        unreachableDps,
        device,
        {
          id: "provision",
          type: "provisio-azure-provision",
          z: "tab",
          device: "device",
          connectOnDeploy: false,
        },
        { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device" },
      ],
      credentials,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(sessionOf()?.state, "idle", "a provision node that does not connect on deploy is obeyed");
    await helper.unload();

    await loadFlow(
      [
        { id: "tab", type: "tab" },
        unreachableDps,
        device,
        { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device" },
      ],
      credentials,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.notEqual(
      sessionOf()?.state,
      "idle",
      "without a provision node, the telemetry node needs the connection",
    );
    await helper.unload();
  });

  it("closes the session when its last user is removed from the flows", async () => {
    await loadFlow(
      [
        { id: "tab", type: "tab" },
        unreachableDps,
        device,
        { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device" },
        { id: "twin", type: "provisio-azure-twin-report", z: "tab", device: "device" },
      ],
      credentials,
    );
    const session = sessionOf();
    assert.ok(session);
    const close = (id: string, removed: boolean) =>
      (getNode(id) as unknown as { close(removed: boolean): Promise<void> }).close(removed);
    await close("twin", true);
    assert.equal(sessionOf(), session, "one user is left");
    await close("telemetry", true);
    assert.equal(sessionOf(), undefined);
    assert.equal(session.state, "closed");
    await helper.unload();
  });

  it("warns once with the count and hands every waiting msg to Catch", async () => {
    const { flow, credentials } = offlineTelemetryFlow({ outboxLimit: 100, outboxOverflow: "reject-new" });
    await loadFlow(flow, credentials);
    const caught: Array<{ messageId?: string; error?: { message?: string } }> = [];
    (getNode("caught") as unknown as NodeJS.EventEmitter).on("input", (msg: (typeof caught)[number]) =>
      caught.push(msg),
    );
    for (const messageId of ["w-1", "w-2", "w-3"]) {
      getNode("telemetry").receive({ payload: { waiting: messageId }, messageId });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const device = getNode("device");
    const warnings: string[] = [];
    const warn = device.warn.bind(device);
    device.warn = (text: unknown) => {
      warnings.push(String(text));
      warn(text);
    };
    // What a "modified nodes" deploy of the device configuration does: that node alone is closed.
    await (device as unknown as { close(removed: boolean): Promise<void> }).close(false);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await helper.unload();
    assert.deepEqual(
      warnings.filter((text) => /not yet accepted/.test(text)),
      ["closing: 3 telemetry message(s) not yet accepted by IoT Hub were rejected"],
    );
    assert.deepEqual(
      caught.map((msg) => msg.messageId),
      ["w-1", "w-2", "w-3"],
    );
    for (const msg of caught) assert.match(msg.error?.message ?? "", /stopped/);
  });
});
