// A redeploy of the device configuration while the hub is unreachable: telemetry that waited in the outbox
// is not lost silently; one warning says how many, and each message reaches a Catch node with its msg. (On a
// full stop the Catch nodes stop too; then Node-RED logs each message's error instead.)
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getNode, helper, loadFlow, startServer, stopServer } from "../support/node-red.js";

describe("closing with telemetry waiting", () => {
  before(startServer);
  after(stopServer);

  it("warns once with the count and hands every waiting msg to Catch", async () => {
    await loadFlow(
      [
        { id: "tab", type: "tab" },
        {
          id: "dps",
          type: "provisio-azure-dps",
          globalEndpoint: "127.0.0.1:1",
          idScope: "0ne00000001",
          transport: "amqp",
          caSource: "none",
        },
        {
          id: "device",
          type: "provisio-azure-device",
          dps: "dps",
          attestation: "symmetricKey",
          registrationId: "dev-1",
          outboxLimit: 100,
          outboxOverflow: "reject-new",
        },
        { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device", wires: [[]] },
        { id: "catcher", type: "catch", z: "tab", scope: null, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "tab" },
      ],
      { device: { symmetricKey: Buffer.alloc(32, 1).toString("base64") } },
    );
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
