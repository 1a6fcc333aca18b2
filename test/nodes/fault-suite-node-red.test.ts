// The fault suite through the Node-RED runtime: the same faults as through DeviceSession, with telemetry
// streamed into a telemetry node at 20 msg/s and counted at the hub, the node's output and a Catch node.
import { after, afterEach, before, describe, it } from "node:test";
import type { DeviceSession } from "../../src/device/index.js";
import {
  FaultWorld,
  SUITE_ACK_TIMEOUT_MS,
  SUITE_BACKOFF,
  type DeviceUnderTest,
} from "../support/fault-harness.js";
import { FAULTS, runFault } from "../support/fault-scenarios.js";
import { symmetricKeyDeviceFlow } from "../support/device-flow.js";
import { getNode, helper, loadFlow, startServer, stopServer } from "../support/node-red.js";

interface Outcome {
  resolve(): void;
  reject(error: Error): void;
}

/** The deployed flow as a device under test: messages in at the telemetry node, outcomes from its output and Catch. */
function flowUnderTest(): DeviceUnderTest {
  const pending = new Map<string, Outcome>();
  const on = (id: string, listener: (msg: Record<string, unknown>) => void): void => {
    (getNode(id) as unknown as NodeJS.EventEmitter).on("input", listener);
  };
  on("sent", (msg: { messageId?: unknown }) => {
    pending.get(String(msg.messageId))?.resolve();
    pending.delete(String(msg.messageId));
  });
  on("caught", (msg: { messageId?: unknown; error?: { message?: string } }) => {
    const outcome = pending.get(String(msg.messageId));
    if (!outcome) return;
    pending.delete(String(msg.messageId));
    outcome.reject(new Error(msg.error?.message ?? "caught"));
  });
  return {
    send: (sequence, messageId) =>
      new Promise<void>((resolve, reject) => {
        pending.set(messageId, { resolve, reject });
        getNode("telemetry").receive({ payload: { sequence }, messageId });
      }),
    onState: (listener) => {
      on("states", (msg) => listener(String(msg.payload)));
    },
    stopThenStart: () => {
      getNode("provision").receive({ topic: "disconnect" });
      getNode("provision").receive({ topic: "connect" });
    },
    resentCount: () =>
      (getNode("device") as unknown as { session?: DeviceSession }).session?.resentCount ?? 0,
    close: () => Promise.resolve(),
  };
}

describe("fault suite: a Node-RED flow against the emulator", () => {
  let world: FaultWorld;

  before(async () => {
    world = await FaultWorld.start();
    await startServer();
  });

  afterEach(async () => {
    await helper.unload();
  });

  after(async () => {
    await stopServer();
    await world?.close();
  });

  FAULTS.forEach((fault, index) => {
    it(fault.name, async (t) => {
      const registrationId = `fault-flow-${index + 1}`;
      const { flow, credentials } = symmetricKeyDeviceFlow(world.emulator, {
        registrationId,
        key: world.enroll(registrationId),
        device: {
          outboxLimit: 10_000,
          outboxOverflow: "reject-new",
          ackTimeout: SUITE_ACK_TIMEOUT_MS / 1000,
          maxRetryDelay: SUITE_BACKOFF.maxDelayMs / 1000,
        },
      });
      await loadFlow(flow, credentials);
      // DPS and the hub take far longer than this turn of the event loop: the first "connected" is still ahead.
      await new Promise<void>((resolve) => {
        (getNode("states") as unknown as NodeJS.EventEmitter).on("input", (msg: { payload?: unknown }) => {
          if (msg.payload === "connected") resolve();
        });
      });
      const figures = await runFault(world, flowUnderTest(), registrationId, fault);
      t.diagnostic(
        `${fault.name}: sent ${figures.sent}, received ${figures.received}, duplicated ${figures.duplicates} (of ${figures.resent} sent again), ` +
          `connected again after ${figures.recoverySeconds} s`,
      );
    });
  });
});
