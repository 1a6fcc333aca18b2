// The faults of the suite, each as: what to do to the world, when it has cleared, and what the device is
// allowed to show for it. Shared by the DeviceSession run and the Node-RED run.
import { strict as assert } from "node:assert";
import {
  account,
  RECOVERY_BOUND_MS,
  SUITE_ACK_TIMEOUT_MS,
  SUITE_BACKOFF,
  sleep,
  streamTelemetry,
  type DeviceUnderTest,
  type FaultWorld,
} from "./fault-harness.js";

export interface Fault {
  name: string;
  /** Does the fault, and resolves at the moment it has cleared (recovery is measured from there). */
  inject(world: FaultWorld, device: DeviceUnderTest, deviceId: string): Promise<void>;
  /** The device must notice: some state other than connected is reported after the injection. */
  noticed: boolean;
  /** Bound on "connected again" after the fault cleared. */
  recoveryBoundMs?: number;
}

/** A fault that is done in one step: it has cleared as soon as it is made. */
function instant(
  action: (world: FaultWorld, device: DeviceUnderTest, deviceId: string) => void,
): Fault["inject"] {
  return (world, device, deviceId) => {
    action(world, device, deviceId);
    return Promise.resolve();
  };
}

export const FAULTS: Fault[] = [
  {
    name: "emulator killed and restarted on the same data and ports",
    inject: (world) => world.restartEmulator(1_000),
    noticed: true,
  },
  {
    name: "connection dropped by the hub",
    inject: instant((world, _device, id) => {
      assert.ok(world.emulator.hub.faults.dropConnection(world.hubHostName, id), "the device was connected");
    }),
    noticed: true,
  },
  {
    name: "telemetry link detached",
    inject: instant((world, _device, id) => {
      assert.ok(world.emulator.hub.faults.detachLink(world.hubHostName, id, "telemetry"));
    }),
    noticed: true,
  },
  {
    name: "twin link detached",
    inject: instant((world, _device, id) => {
      assert.ok(world.emulator.hub.faults.detachLink(world.hubHostName, id, "twin"));
    }),
    noticed: true,
  },
  {
    name: "throttling",
    inject: async (world) => {
      world.emulator.hub.faults.throttleNext(5);
      await sleep(1_000);
    },
    noticed: false,
  },
  {
    name: "acknowledgements delayed past the timeout",
    inject: async (world) => {
      world.emulator.hub.faults.delayAcks(SUITE_ACK_TIMEOUT_MS + 1_000);
      await sleep(SUITE_ACK_TIMEOUT_MS + 500);
      world.emulator.hub.faults.delayAcks(0);
    },
    noticed: true,
  },
  {
    name: "tokens rejected twice, then accepted",
    inject: instant((world, _device, id) => {
      world.emulator.hub.faults.rejectNextTokens(2);
      assert.ok(world.emulator.hub.faults.dropConnection(world.hubHostName, id));
    }),
    noticed: true,
    // Two refusals, each waited out with backoff and followed by a DPS registration (the emulator has DPS
    // poll after 1 s), before the accepted token.
    recoveryBoundMs: 2 * SUITE_BACKOFF.maxDelayMs + 2 * 3_000 + 2_000,
  },
  {
    name: "TCP reset",
    inject: instant((world) => {
      world.proxy.resetAll();
    }),
    noticed: true,
  },
  {
    name: "20 s network partition",
    inject: async (world) => {
      world.proxy.partition();
      await sleep(20_000);
      world.proxy.heal();
    },
    noticed: true,
  },
  {
    name: "connections refused for 3 s",
    inject: async (world) => {
      await world.proxy.refuse();
      await sleep(3_000);
      await world.proxy.accept();
    },
    noticed: true,
  },
  {
    name: "stop() then start() without awaiting",
    inject: instant((_world, device) => {
      device.stopThenStart();
    }),
    noticed: true,
  },
];

export interface FaultFigures {
  sent: number;
  received: number;
  duplicates: number;
  resent: number;
  recoverySeconds: number;
}

/**
 * Streams numbered telemetry before, during and after `fault`, then asserts: every message sent reached the
 * hub, order kept (by the last copy of each id), duplicates only for messages in flight (sent again), connected again within the bound, nothing
 * rejected. Returns the figures.
 */
export async function runFault(
  world: FaultWorld,
  device: DeviceUnderTest,
  deviceId: string,
  fault: Fault,
): Promise<FaultFigures> {
  let lastState = "connected";
  const seen: string[] = [];
  device.onState((state) => {
    lastState = state;
    seen.push(state);
  });
  const stream = streamTelemetry(device, deviceId);
  await sleep(1_000);
  const injectedAt = seen.length;
  await fault.inject(world, device, deviceId);
  const clearedAt = Date.now();
  const bound = fault.recoveryBoundMs ?? RECOVERY_BOUND_MS;
  // Give a just-injected fault a moment to be noticed before judging "connected".
  await sleep(100);
  while (lastState !== "connected" && Date.now() - clearedAt < bound + 1_000) await sleep(25);
  const recoveryMs = Date.now() - clearedAt;
  await sleep(1_500);
  const result = await stream.stop(30_000);
  // Let the last acknowledged messages' records land.
  const deadline = Date.now() + 5_000;
  while (account(result.sent, world.receivedBy(deviceId)).missing.length > 0 && Date.now() < deadline) {
    await sleep(50);
  }
  const delivery = account(result.sent, world.receivedBy(deviceId));
  const states = seen.slice(injectedAt);
  assert.deepEqual(result.rejected, [], "no message was given up");
  assert.deepEqual(result.unsettled, [], "every send settled");
  assert.deepEqual(delivery.missing, [], "every message sent reached the hub");
  assert.deepEqual(delivery.outOfOrder, [], "in the order it was sent");
  const resent = device.resentCount();
  assert.ok(
    delivery.duplicates <= resent,
    `${delivery.duplicates} duplicates, but only ${resent} messages were in flight and sent again`,
  );
  if (fault.noticed)
    assert.ok(
      states.some((state) => state !== "connected"),
      `noticed: ${states.join(" > ")}`,
    );
  else assert.deepEqual(states, [], "no reconnect");
  assert.equal(lastState, "connected");
  assert.ok(recoveryMs <= bound, `connected again ${recoveryMs} ms after the fault cleared (bound ${bound})`);
  return {
    sent: delivery.sent,
    received: delivery.received,
    duplicates: delivery.duplicates,
    resent,
    recoverySeconds: Math.round(recoveryMs / 100) / 10,
  };
}
