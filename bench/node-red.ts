// Telemetry through a Node-RED flow (inject into the telemetry node, counted at its output) on the test
// helper's runtime, against the same emulator as the DeviceSession figures.
import { randomBytes } from "node:crypto";
import { getNode, helper, loadFlow, startServer, stopServer } from "../test/support/node-red.js";
import { samplePayload, type BenchWorld } from "./telemetry.js";

let flows = 0;

export interface FlowBench {
  /** Sends `count` messages into the telemetry node at once; resolves with msg/s when all came out. */
  send(count: number): Promise<number>;
  close(): Promise<void>;
}

export async function connectedFlow(world: BenchWorld, window: number): Promise<FlowBench> {
  flows += 1;
  const registrationId = `bench-flow-${process.pid}-${flows}`;
  const key = randomBytes(32).toString("base64");
  world.emulator.dps.store.putIndividualEnrollment({
    registrationId,
    attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
  });
  await startServer();
  await loadFlow(
    [
      { id: "tab", type: "tab" },
      {
        id: "dps-config",
        type: "provisio-azure-dps",
        globalEndpoint: world.emulator.endpoints.dps.amqp,
        idScope: world.emulator.idScope,
        transport: "amqp",
        caSource: "text",
      },
      {
        id: "device",
        type: "provisio-azure-device",
        dps: "dps-config",
        attestation: "symmetricKey",
        registrationId,
        outboxLimit: 1_000_000,
        outboxOverflow: "reject-new",
        telemetryWindow: window,
      },
      {
        id: "provision",
        type: "provisio-azure-provision",
        z: "tab",
        device: "device",
        connectOnDeploy: true,
        wires: [["states"]],
      },
      { id: "states", type: "helper", z: "tab" },
      { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device", wires: [["sent"]] },
      { id: "sent", type: "helper", z: "tab" },
    ],
    { "dps-config": { caPem: world.emulator.caPem }, device: { symmetricKey: key } },
  );
  await new Promise<void>((resolve) => {
    (getNode("states") as unknown as NodeJS.EventEmitter).on("input", (msg: { payload?: unknown }) => {
      if (msg.payload === "connected") resolve();
    });
  });
  let sequence = 0;
  return {
    async send(count) {
      const telemetry = getNode("telemetry");
      const sent = getNode("sent") as unknown as NodeJS.EventEmitter;
      const started = performance.now();
      const all = new Promise<void>((resolve) => {
        let outputs = 0;
        const onInput = (): void => {
          outputs += 1;
          if (outputs < count) return;
          sent.off("input", onInput);
          resolve();
        };
        sent.on("input", onInput);
      });
      for (let i = 0; i < count; i++) {
        sequence += 1;
        const sample = samplePayload(sequence);
        telemetry.receive({
          payload: sample.body,
          properties: sample.properties,
          messageId: `f-${sequence}`,
        });
      }
      await all;
      return count / ((performance.now() - started) / 1000);
    },
    async close() {
      await helper.unload();
      await stopServer();
    },
  };
}
