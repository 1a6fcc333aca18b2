// The fault suite through DeviceSession: for each fault, numbered telemetry streams at 20 msg/s before,
// during and after it, and every message must reach the hub, in order, with duplicates only for messages in
// flight when the fault hit (sent again, as the session counts them), and the device connected again within
// the backoff cap + 2 s.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ExponentialBackoff } from "../../src/device/backoff.js";
import { DeviceSession, type AttestationConfig } from "../../src/device/index.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { startSwtpm } from "../../src/swtpm/launcher.js";
import {
  FaultWorld,
  SUITE_ACK_TIMEOUT_MS,
  SUITE_BACKOFF,
  account,
  sleep,
  streamTelemetry,
  type DeviceUnderTest,
} from "../support/fault-harness.js";
import { FAULTS, runFault } from "../support/fault-scenarios.js";
import { startTestTpm } from "../support/swtpm.js";

function sessionFor(world: FaultWorld, attestation: AttestationConfig): DeviceSession {
  return new DeviceSession({
    dps: {
      globalEndpoint: world.emulator.endpoints.dps.amqp,
      idScope: world.emulator.idScope,
      transport: "amqp",
      ca: world.emulator.caPem,
    },
    attestation,
    options: {
      backoff: new ExponentialBackoff(SUITE_BACKOFF),
      telemetryAckTimeoutMs: SUITE_ACK_TIMEOUT_MS,
      twinTimeoutMs: 5_000,
      connectTimeoutMs: 3_000,
      provisioningTimeoutMs: 10_000,
      outboxCapacity: 10_000,
    },
  });
}

function underTest(session: DeviceSession): DeviceUnderTest {
  return {
    send: (sequence, messageId) => session.sendTelemetry({ sequence }, { messageId }).then(() => undefined),
    onState: (listener) => session.on("state", (event) => listener(event.state)),
    stopThenStart: () => {
      void session.stop();
      session.start();
    },
    resentCount: () => session.resentCount,
    close: () => session.close(),
  };
}

async function connected(session: DeviceSession): Promise<void> {
  if (session.state === "connected") return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not connected: ${session.state}`)), 30_000);
    session.on("state", (event) => {
      if (event.state !== "connected") return;
      clearTimeout(timer);
      resolve();
    });
  });
}

describe("fault suite: DeviceSession against the emulator", () => {
  let world: FaultWorld;
  /** What rhea prints by itself (console.warn "[connection-N] disconnected ...") when nobody heard an event. */
  const stray: string[] = [];
  const warn = console.warn;

  before(async () => {
    console.warn = (...args: unknown[]) => {
      stray.push(args.map(String).join(" "));
      warn(...args);
    };
    world = await FaultWorld.start();
  });

  after(async () => {
    console.warn = warn;
    await world?.close();
  });

  FAULTS.forEach((fault, index) => {
    it(fault.name, async (t) => {
      const registrationId = `fault-session-${index + 1}`;
      const key = world.enroll(registrationId);
      const session = sessionFor(world, { kind: "symmetricKey", registrationId, key });
      try {
        session.start();
        await connected(session);
        const figures = await runFault(world, underTest(session), registrationId, fault);
        t.diagnostic(
          `${fault.name}: sent ${figures.sent}, received ${figures.received}, duplicated ${figures.duplicates} (of ${figures.resent} sent again), ` +
            `connected again after ${figures.recoverySeconds} s`,
        );
      } finally {
        await session.close();
      }
    });
  });

  it("swtpm killed during provisioning", async (t) => {
    const tpm = await startTestTpm();
    let revived: Awaited<ReturnType<typeof startSwtpm>> | undefined;
    try {
      const reader = new TpmSecurityClient(tpm.connection);
      const endorsementKey = (await reader.getEndorsementKey()).toString("base64");
      const registrationId = await reader.getRegistrationId();
      await reader.close();
      world.emulator.dps.store.putIndividualEnrollment({
        registrationId,
        attestation: { type: "tpm", tpm: { endorsementKey } },
      });
      const session = sessionFor(world, { kind: "tpm", connection: tpm.connection });
      const states: string[] = [];
      session.on("state", (event) => states.push(event.state));
      // Telemetry streams from before the start: it waits in the outbox through the fault.
      const stream = streamTelemetry(underTest(session), registrationId);
      session.start();
      while (!states.includes("provisioning")) await sleep(5);
      process.kill(tpm.pid, "SIGKILL");
      await tpm.exited;
      await sleep(1_000);
      revived = await startSwtpm({ stateDir: tpm.stateDir, ...tpm.connection });
      const clearedAt = Date.now();
      await connected(session);
      const recoveryMs = Date.now() - clearedAt;
      await sleep(1_500);
      const result = await stream.stop(30_000);
      await sleep(500);
      const delivery = account(result.sent, world.receivedBy(registrationId));
      await session.close();
      assert.deepEqual(result.rejected, []);
      assert.deepEqual(delivery.missing, []);
      assert.deepEqual(delivery.outOfOrder, []);
      assert.equal(delivery.duplicates, 0, "nothing was in flight before the first connect");
      assert.ok(states.includes("retrying"), states.join(" > "));
      assert.ok(recoveryMs <= SUITE_BACKOFF.maxDelayMs + 2_000, `${recoveryMs} ms`);
      t.diagnostic(
        `swtpm killed during provisioning: sent ${delivery.sent}, received ${delivery.received}, ` +
          `duplicated ${delivery.duplicates}, connected ${Math.round(recoveryMs / 100) / 10} s after swtpm was back`,
      );
    } finally {
      await revived?.stop();
      await tpm.dispose();
    }
  });

  it("printed no connection noise of its own outside a logger through all of it", () => {
    assert.deepEqual(
      stray.filter((line) => /\[connection-\d+\]/.test(line)),
      [],
    );
  });
});
