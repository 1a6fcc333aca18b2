// Fleet figures: devices from one enrollment group connected in growing steps (1, 10, 100, 1,000), as
// DeviceSessions and as unmodified SDK clients, each subject in a child process of its own
// (bench/fleet-devices.ts) against the emulator in this one: resident memory per connected device after each
// step, and the time until all of them are connected.
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { FleetConfig, FleetReport } from "./fleet-devices.js";
import type { BenchWorld } from "./telemetry.js";

export interface FleetRound {
  /** MB of RSS per connected device after each step, by the number of devices. */
  mbPerDevice: Map<number, number>;
  /** Milliseconds until every device of the last step was connected (all steps together). */
  allConnectedMs: number;
}

let groups = 0;

export async function fleetRound(
  world: BenchWorld,
  subject: FleetConfig["subject"],
  steps: number[],
  concurrency: number,
): Promise<FleetRound> {
  groups += 1;
  const enrollmentGroupId = `bench-fleet-${process.pid}-${groups}`;
  const groupKey = randomBytes(32).toString("base64");
  world.emulator.dps.store.putEnrollmentGroup({
    enrollmentGroupId,
    attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey } },
  });
  const child = fork(join(__dirname, "fleet-devices.ts"), [], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const config: FleetConfig = {
    subject,
    dpsEndpoint: world.emulator.endpoints.dps.mqtt,
    idScope: world.emulator.idScope,
    caPem: world.emulator.caPem,
    groupKey,
    prefix: enrollmentGroupId,
    steps,
    concurrency,
  };
  try {
    return await new Promise<FleetRound>((resolve, reject) => {
      const mbPerDevice = new Map<number, number>();
      let baseline = 0;
      let allConnectedMs = 0;
      child.on("message", (report: FleetReport) => {
        if (report.kind === "failed") return reject(new Error(`fleet (${subject}): ${report.error}`));
        if (report.kind === "baseline") {
          baseline = report.rssBytes;
          return;
        }
        allConnectedMs += report.connectMs;
        mbPerDevice.set(report.devices, (report.rssBytes - baseline) / report.devices / 2 ** 20);
        if (report.devices === steps[steps.length - 1]) resolve({ mbPerDevice, allConnectedMs });
      });
      child.on("exit", (code) => reject(new Error(`fleet (${subject}) child exited with ${code}`)));
      child.send(config);
    });
  } finally {
    child.kill("SIGKILL");
    world.emulator.dps.store.deleteEnrollmentGroup(enrollmentGroupId);
  }
}
