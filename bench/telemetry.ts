// Telemetry and twin-report figures: DeviceSession against the unmodified SDK client (azure-iot-device over
// AMQP), both on the same emulator in the same run, each device with its own identity.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, Message, type Twin } from "azure-iot-device";
import { Amqp } from "azure-iot-device-amqp";
import { DeviceSession, type DeviceSessionOptions } from "../src/device/index.js";
import { startEmulator, type Emulator } from "../src/emulator/index.js";

export interface BenchWorld {
  emulator: Emulator;
  close(): Promise<void>;
}

export async function startBenchWorld(): Promise<BenchWorld> {
  const dir = await mkdtemp(join(tmpdir(), "provisio-bench-"));
  const emulator = await startEmulator({ dataDir: join(dir, "emulator") });
  return {
    emulator,
    async close() {
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let enrolled = 0;

/** A connected DeviceSession with an identity of its own. */
export async function connectedSession(
  world: BenchWorld,
  options: DeviceSessionOptions = {},
): Promise<DeviceSession> {
  enrolled += 1;
  const registrationId = `bench-${process.pid}-${enrolled}`;
  const key = randomBytes(32).toString("base64");
  world.emulator.dps.store.putIndividualEnrollment({
    registrationId,
    attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
  });
  const session = new DeviceSession({
    dps: {
      globalEndpoint: world.emulator.endpoints.dps.amqp,
      idScope: world.emulator.idScope,
      transport: "amqp",
      ca: world.emulator.caPem,
    },
    attestation: { kind: "symmetricKey", registrationId, key },
    options: { outboxCapacity: 1_000_000, ...options },
  });
  (session as unknown as { sdkKey: string }).sdkKey = key;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not connected: ${session.state}`)), 60_000);
    session.on("state", (event) => {
      if (event.state !== "connected") return;
      clearTimeout(timer);
      resolve();
    });
    session.start();
  });
  return session;
}

/** A raw SDK client, open, for a device provisioned (by a session that is then closed) for it alone. */
export async function rawClient(world: BenchWorld): Promise<Client> {
  const session = await connectedSession(world);
  const { hub, deviceId } = session.status;
  const key = (session as unknown as { sdkKey: string }).sdkKey;
  await session.close();
  const client = Client.fromConnectionString(
    `HostName=${hub};DeviceId=${deviceId};SharedAccessKey=${key}`,
    Amqp,
  );
  await client.setOptions({ ca: world.emulator.caPem });
  await client.open();
  return client;
}

/** ~200 bytes of JSON with two application properties, as the figures use. */
export function samplePayload(index: number): {
  body: Record<string, unknown>;
  properties: Record<string, string>;
} {
  return {
    body: {
      sequence: index,
      temperature: 21.5 + (index % 10) / 10,
      humidity: 40 + (index % 7),
      line: "assembly-3",
      machine: "press-17",
      note: "x".repeat(90),
    },
    properties: { site: "plant-a", kind: "measurement" },
  };
}

function sdkMessage(index: number): Message {
  const sample = samplePayload(index);
  const message = new Message(JSON.stringify(sample.body));
  message.messageId = `raw-${index}`;
  message.contentType = "application/json";
  message.contentEncoding = "utf-8";
  for (const [key, value] of Object.entries(sample.properties)) message.properties.add(key, value);
  return message;
}

export interface Throughput {
  perSecond: number;
  p50Ms?: number;
  p99Ms?: number;
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))];
}

function latencies(values: number[]): { p50Ms: number; p99Ms: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

/** Raw SDK: `inFlight` sends outstanding at a time (1 = sequential; count = all at once). */
export async function rawTelemetry(client: Client, count: number, inFlight: number): Promise<Throughput> {
  const started = performance.now();
  const took: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const at = performance.now();
      await client.sendEvent(sdkMessage(index));
      took.push(performance.now() - at);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return { perSecond: count / ((performance.now() - started) / 1000), ...latencies(took) };
}

/** DeviceSession: `inFlight` sendTelemetry calls outstanding at a time (the session's own window applies). */
export async function sessionTelemetry(
  session: DeviceSession,
  count: number,
  inFlight: number,
): Promise<Throughput> {
  const started = performance.now();
  const took: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const sample = samplePayload(index);
      const at = performance.now();
      await session.sendTelemetry(sample.body, { properties: sample.properties, messageId: `s-${index}` });
      took.push(performance.now() - at);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
  return { perSecond: count / ((performance.now() - started) / 1000), ...latencies(took) };
}

/** Reported-properties updates per second, `concurrency` at a time. */
export async function rawReports(client: Client, count: number, concurrency: number): Promise<Throughput> {
  const twin: Twin = await client.getTwin();
  const reported = twin.properties.reported as unknown as {
    update(patch: Record<string, unknown>, done: (error?: Error) => void): void;
  };
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      await new Promise<void>((resolve, reject) =>
        reported.update({ counter: index }, (error?: Error) => (error ? reject(error) : resolve())),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { perSecond: count / ((performance.now() - started) / 1000) };
}

export async function sessionReports(
  session: DeviceSession,
  count: number,
  concurrency: number,
): Promise<Throughput> {
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      await session.reportProperties({ counter: index });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { perSecond: count / ((performance.now() - started) / 1000) };
}
