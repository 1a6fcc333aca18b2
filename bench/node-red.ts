// Telemetry through a Node-RED flow (inject into the telemetry node, counted at its output) on the test
// helper's runtime with its call-recording spies taken off, against the same emulator as the DeviceSession figures.
import { randomBytes } from "node:crypto";
import { symmetricKeyDeviceFlow } from "../test/support/device-flow.js";
import { getNode, helper, loadFlow, startServer, stopServer } from "../test/support/node-red.js";
import { samplePayload, type BenchWorld } from "./telemetry.js";

let flows = 0;

export interface FlowBench {
  /** Sends `count` messages into the telemetry node at once; resolves with msg/s when all came out. */
  send(count: number): Promise<number>;
  close(): Promise<void>;
}

type Spied = ((...args: unknown[]) => unknown) & { wrappedMethod?: Spied };

function unwrapped(method: Spied): Spied {
  let original = method;
  while (typeof original.wrappedMethod === "function") original = original.wrappedMethod;
  return original;
}

/**
 * The test helper wraps Node-RED's logger and Node methods (send, status, log...) in sinon spies that record
 * every call for assertions, plus a proxy per call; a Node-RED runtime has none of that, and the records grow
 * with every message. The bench measures the runtime as it ships: once the flow is loaded it takes them off,
 * on the Node prototype and where a node copied one (Node-RED copies `send` onto each wired node).
 */
function unwrapTestHelperSpies(nodeIds: string[]): void {
  const internals = helper as unknown as {
    _sandbox: { restore(): void };
    _NodePrototype: Record<string, unknown>;
  };
  internals._sandbox.restore();
  const holders = [
    internals._NodePrototype,
    ...nodeIds.map((id) => getNode(id) as unknown as Record<string, unknown>),
  ];
  for (const holder of holders) {
    for (const name of Object.getOwnPropertyNames(holder)) {
      const value = holder[name];
      if (typeof value === "function") holder[name] = unwrapped(value as Spied);
    }
  }
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
  const { flow, credentials } = symmetricKeyDeviceFlow(world.emulator, {
    registrationId,
    key,
    device: { outboxLimit: 1_000_000, outboxOverflow: "reject-new", telemetryWindow: window },
    catcher: false,
  });
  await loadFlow(flow, credentials);
  // The test helper wraps every Node method in a sinon spy that records each call for assertions; a
  // Node-RED runtime has none of that, and the records grow with every message: take them off.
  unwrapTestHelperSpies(["provision", "states", "telemetry", "sent"]);
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
