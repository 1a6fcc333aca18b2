// `npm run bench`: each figure of the project beside a baseline measured in the same run on the same emulator
// (the unmodified Azure SDK, or the SDK's TPM client), 3 rounds, min/median/max, a printed table and a JSON
// file. `--smoke` runs every figure once with few messages (seconds, for CI; no thresholds). `--out <file>`
// sets where the JSON goes (default bench-results.json). Figures on a shared machine are noisy: compare ratios.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rawStartToConnected, sessionStartToConnected } from "./connect.js";
import { diskRound } from "./disk-outbox.js";
import { fleetRound, type FleetRound } from "./fleet.js";
import { connectedFlow } from "./node-red.js";
import { openRheaSender } from "./rhea-ceiling.js";
import { rawTpmStartToConnected, sessionTpmStartToConnected } from "./tpm-connect.js";
import { tpmRound } from "./tpm.js";
import {
  connectedSession,
  rawClient,
  rawReports,
  rawTelemetry,
  sessionReports,
  sessionTelemetry,
  startBenchWorld,
  type Throughput,
} from "./telemetry.js";

const smoke = process.argv.includes("--smoke");
const outIndex = process.argv.indexOf("--out");
const outFile = outIndex > 0 ? process.argv[outIndex + 1] : "bench-results.json";
const ROUNDS = smoke ? 1 : 3;
const MESSAGES = smoke ? 200 : 5_000;
const REPORTS = smoke ? 50 : 1_000;
const WINDOW = 64;
const REPLAYED = smoke ? 2_000 : 100_000;
/** Connected devices after each fleet step; the last is "all connected". */
const FLEET_STEPS = smoke ? [1, 10] : [1, 10, 100, 1_000];
/**
 * Rounds that go up to the last step. On a 2-core machine 1,000 devices take minutes per subject (every DPS
 * registration waits out the 1 s retry-after, and the emulator shares the cores), so the full ramp runs once
 * and the steps below it 3 times: the bench stays under 10 minutes. The figures say so.
 */
const FLEET_FULL_ROUNDS = 1;
/** Devices of a fleet step connecting at the same time. */
const FLEET_CONCURRENCY = 200;

interface Spread {
  min: number;
  median: number;
  max: number;
}

export interface Figure {
  name: string;
  unit: string;
  /** Higher is better (msg/s), or lower (ms). */
  better: "higher" | "lower";
  ours: Spread;
  baselineName: string;
  baseline: Spread;
  /** ours / baseline, medians. */
  ratio: number;
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] };
}

function figure(
  name: string,
  unit: string,
  better: Figure["better"],
  ours: number[],
  baselineName: string,
  baseline: number[],
): Figure {
  const o = spread(ours);
  const b = spread(baseline);
  return { name, unit, better, ours: o, baselineName, baseline: b, ratio: o.median / b.median };
}

async function telemetryFigures(): Promise<Figure[]> {
  const world = await startBenchWorld();
  const rows: Record<string, number[]> = {};
  const add = (key: string, value: number): void => {
    (rows[key] ??= []).push(value);
  };
  try {
    const raw = await rawClient(world);
    const session = await connectedSession(world, { telemetryWindow: WINDOW });
    const flow = await connectedFlow(world, WINDOW);
    const forRhea = await connectedSession(world);
    const rhea = await openRheaSender({
      hub: forRhea.status.hub ?? "",
      deviceId: forRhea.status.deviceId ?? "",
      key: (forRhea as unknown as { sdkKey: string }).sdkKey,
      ca: world.emulator.caPem,
    });
    await forRhea.close();
    const outboxDir = await mkdtemp(join(tmpdir(), "provisio-bench-disk-"));
    const onDisk = await connectedSession(world, {
      telemetryWindow: WINDOW,
      outboxFile: join(outboxDir, "outbox.log"),
    });
    for (let round = 0; round < ROUNDS; round++) {
      add("raw.sequential", (await rawTelemetry(raw, Math.ceil(MESSAGES / 5), 1)).perSecond);
      const rawWindow: Throughput = await rawTelemetry(raw, MESSAGES, WINDOW);
      add("raw.window", rawWindow.perSecond);
      add("raw.p50", rawWindow.p50Ms ?? 0);
      add("raw.p99", rawWindow.p99Ms ?? 0);
      add("raw.all", (await rawTelemetry(raw, MESSAGES, MESSAGES)).perSecond);
      add("session.sequential", (await sessionTelemetry(session, Math.ceil(MESSAGES / 5), 1)).perSecond);
      const ours: Throughput = await sessionTelemetry(session, MESSAGES, WINDOW);
      add("session.window", ours.perSecond);
      add("session.p50", ours.p50Ms ?? 0);
      add("session.p99", ours.p99Ms ?? 0);
      add("session.all", (await sessionTelemetry(session, MESSAGES, MESSAGES)).perSecond);
      add("flow.all", await flow.send(MESSAGES));
      add("rhea.all", await rhea.send(MESSAGES));
      add("disk.window", (await sessionTelemetry(onDisk, MESSAGES, WINDOW)).perSecond);
      add("session.connect", await sessionStartToConnected(world));
      add("raw.connect", await rawStartToConnected(world));
      add("session.connect.tpm", await sessionTpmStartToConnected(world));
      add("raw.connect.tpm", await rawTpmStartToConnected(world));
      add("raw.reports.sequential", (await rawReports(raw, Math.ceil(REPORTS / 5), 1)).perSecond);
      add("raw.reports.concurrent", (await rawReports(raw, REPORTS, REPORTS)).perSecond);
      add("session.reports.sequential", (await sessionReports(session, Math.ceil(REPORTS / 5), 1)).perSecond);
      add("session.reports.concurrent", (await sessionReports(session, REPORTS, REPORTS)).perSecond);
    }
    await raw.close();
    await session.close();
    await flow.close();
    rhea.close();
    await onDisk.close();
    await rm(outboxDir, { recursive: true, force: true });
  } finally {
    await world.close();
  }
  const sdk = "raw SDK";
  return [
    figure(
      "telemetry, 1 at a time",
      "msg/s",
      "higher",
      rows["session.sequential"],
      `${sdk}, 1 at a time`,
      rows["raw.sequential"],
    ),
    figure(
      `telemetry, ${WINDOW} callers`,
      "msg/s",
      "higher",
      rows["session.window"],
      `${sdk}, ${WINDOW} in flight`,
      rows["raw.window"],
    ),
    figure(
      `telemetry, ${WINDOW} callers`,
      "msg/s",
      "higher",
      rows["session.window"],
      `${sdk}, 1 at a time`,
      rows["raw.sequential"],
    ),
    figure(
      "telemetry, all at once",
      "msg/s",
      "higher",
      rows["session.all"],
      `${sdk}, all at once`,
      rows["raw.all"],
    ),
    figure(
      "telemetry, all at once",
      "msg/s",
      "higher",
      rows["session.all"],
      "bare rhea sender, all at once (ceiling)",
      rows["rhea.all"],
    ),
    figure(
      `telemetry, ${WINDOW} callers, outbox on disk`,
      "msg/s",
      "higher",
      rows["disk.window"],
      `${sdk}, ${WINDOW} in flight`,
      rows["raw.window"],
    ),
    figure(
      `telemetry, ${WINDOW} callers, outbox on disk`,
      "msg/s",
      "higher",
      rows["disk.window"],
      `${sdk}, 1 at a time`,
      rows["raw.sequential"],
    ),
    figure(
      "telemetry through Node-RED, all at once",
      "msg/s",
      "higher",
      rows["flow.all"],
      "DeviceSession, all at once",
      rows["session.all"],
    ),
    figure(
      "telemetry through Node-RED, all at once",
      "msg/s",
      "higher",
      rows["flow.all"],
      `${sdk}, ${WINDOW} in flight`,
      rows["raw.window"],
    ),
    figure(
      `latency p50, ${WINDOW} callers`,
      "ms",
      "lower",
      rows["session.p50"],
      `${sdk}, ${WINDOW} in flight`,
      rows["raw.p50"],
    ),
    figure(
      `latency p99, ${WINDOW} callers`,
      "ms",
      "lower",
      rows["session.p99"],
      `${sdk}, ${WINDOW} in flight`,
      rows["raw.p99"],
    ),
    figure(
      "start to connected, symmetric key",
      "ms",
      "lower",
      rows["session.connect"],
      `${sdk}: register, open, twin GET`,
      rows["raw.connect"],
    ),
    figure(
      "start to connected, TPM on swtpm",
      "ms",
      "lower",
      rows["session.connect.tpm"],
      `${sdk} with its TPM client: register, open, twin GET`,
      rows["raw.connect.tpm"],
    ),
    figure(
      "twin reports, 1 at a time",
      "reports/s",
      "higher",
      rows["session.reports.sequential"],
      `${sdk}, 1 at a time`,
      rows["raw.reports.sequential"],
    ),
    figure(
      "twin reports, all at once",
      "reports/s",
      "higher",
      rows["session.reports.concurrent"],
      `${sdk}, all at once`,
      rows["raw.reports.concurrent"],
    ),
  ];
}

async function fleetFigures(): Promise<Figure[]> {
  const world = await startBenchWorld();
  const ours: FleetRound[] = [];
  const raw: FleetRound[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const steps = round < FLEET_FULL_ROUNDS ? FLEET_STEPS : FLEET_STEPS.slice(0, -1);
      ours.push(await fleetRound(world, "ours", steps, FLEET_CONCURRENCY));
      raw.push(await fleetRound(world, "raw", steps, FLEET_CONCURRENCY));
    }
  } finally {
    await world.close();
  }
  const perDevice = (rounds: FleetRound[], devices: number): number[] =>
    rounds.flatMap((r) => r.mbPerDevice.get(devices) ?? []);
  const all = FLEET_STEPS[FLEET_STEPS.length - 1];
  const fullRounds = Math.min(ROUNDS, FLEET_FULL_ROUNDS);
  const roundsNote = fullRounds < ROUNDS ? ` (${fullRounds} round)` : "";
  return [
    ...FLEET_STEPS.map((devices) =>
      figure(
        `RSS per connected device, ${devices} device${devices === 1 ? "" : "s"}${devices === all ? roundsNote : ""}`,
        "MB",
        "lower",
        perDevice(ours, devices),
        "raw SDK clients",
        perDevice(raw, devices),
      ),
    ),
    figure(
      `${all} devices from one enrollment group, time to all connected${roundsNote}`,
      "ms",
      "lower",
      ours.slice(0, fullRounds).map((r) => r.allConnectedMs),
      "raw SDK clients",
      raw.slice(0, fullRounds).map((r) => r.allConnectedMs),
    ),
  ];
}

function diskFigures(): Figure[] {
  const rounds = Array.from({ length: ROUNDS }, () => diskRound(REPLAYED));
  return [
    figure(
      `outbox on disk: write ${REPLAYED}`,
      "msg/s",
      "higher",
      rounds.map((r) => r.keepPerSecond),
      "in-memory outbox",
      rounds.map((r) => r.memoryPerSecond),
    ),
    figure(
      `outbox on disk: replay ${REPLAYED} after restart`,
      "msg/s",
      "higher",
      rounds.map((r) => r.replayPerSecond),
      "target, fixed: 5,000 msg/s",
      rounds.map(() => 5_000),
    ),
  ];
}

async function tpmFigures(): Promise<Figure[]> {
  const rounds: Array<Awaited<ReturnType<typeof tpmRound>>> = [];
  for (let round = 0; round < ROUNDS; round++) rounds.push(await tpmRound());
  return rounds[0].map(({ metric }, index) =>
    figure(
      `TPM ${metric}`,
      "ms/op",
      "lower",
      rounds.map((r) => r[index].ours),
      "SDK TPM client",
      rounds.map((r) => r[index].sdk),
    ),
  );
}

function fixed(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
}

function table(figures: Figure[]): string {
  const head = [
    "figure",
    "unit",
    "ours min / median / max",
    "baseline",
    "baseline min / median / max",
    "ratio",
  ];
  const body = figures.map((f) => [
    f.name,
    f.unit,
    `${fixed(f.ours.min)} / ${fixed(f.ours.median)} / ${fixed(f.ours.max)}`,
    f.baselineName,
    `${fixed(f.baseline.min)} / ${fixed(f.baseline.median)} / ${fixed(f.baseline.max)}`,
    `${f.ratio.toFixed(2)}x`,
  ]);
  const lines = [head, head.map(() => "---"), ...body].map((cells) => `| ${cells.join(" | ")} |`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const started = Date.now();
  const figures = [
    ...(await telemetryFigures()),
    ...(await fleetFigures()),
    ...diskFigures(),
    ...(await tpmFigures()),
  ];
  const seconds = Math.round((Date.now() - started) / 1000);
  console.log(table(figures));
  console.log(
    `\n${smoke ? "smoke run" : `${ROUNDS} rounds`}, ${MESSAGES} messages of ~200 B with 2 properties, ` +
      `${REPORTS} twin reports; ${seconds} s. Ratio = ours / baseline (medians).`,
  );
  await writeFile(
    outFile,
    JSON.stringify(
      { smoke, rounds: ROUNDS, messages: MESSAGES, reports: REPORTS, seconds, figures },
      null,
      2,
    ),
  );
  console.log(`JSON: ${outFile}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
