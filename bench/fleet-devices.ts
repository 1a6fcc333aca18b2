// A child process of the bench that connects devices from one enrollment group (symmetric key), either as
// DeviceSessions or as unmodified SDK clients doing the same steps, in growing steps, and after each step
// reports the time the step took and the process's resident memory. Alone in its process so that its RSS is
// the devices' (the emulator runs in the parent). The configuration, group key included, arrives over IPC.
import { createHmac } from "node:crypto";
import { Client } from "azure-iot-device";
import { Amqp as HubAmqp } from "azure-iot-device-amqp";
import { MqttBase } from "azure-iot-mqtt-base";
import { ProvisioningDeviceClient, type RegistrationResult } from "azure-iot-provisioning-device";
import { Mqtt as DpsMqtt } from "azure-iot-provisioning-device-mqtt";
import { SymmetricKeySecurityClient } from "azure-iot-security-symmetric-key";
import { DeviceSession } from "../src/device/index.js";

export interface FleetConfig {
  subject: "ours" | "raw";
  dpsEndpoint: string;
  idScope: string;
  caPem: string;
  groupKey: string;
  /** Registration ids are `<prefix>-<n>`. */
  prefix: string;
  /** Connected devices after each step, growing. */
  steps: number[];
  /** Devices connecting at the same time. */
  concurrency: number;
}

export type FleetReport =
  | { kind: "baseline"; rssBytes: number }
  | { kind: "step"; devices: number; connectMs: number; rssBytes: number }
  | { kind: "failed"; error: string };

const held: unknown[] = [];

async function connectOurs(config: FleetConfig, registrationId: string): Promise<void> {
  const session = new DeviceSession({
    dps: { globalEndpoint: config.dpsEndpoint, idScope: config.idScope, transport: "mqtt", ca: config.caPem },
    attestation: { kind: "symmetricKey", registrationId, groupKey: config.groupKey },
  });
  held.push(session);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${registrationId} not connected: ${session.state}`)),
      120_000,
    );
    session.on("state", (event) => {
      if (event.state !== "connected") return;
      clearTimeout(timer);
      resolve();
    });
    session.start();
  });
}

async function connectRaw(config: FleetConfig, registrationId: string): Promise<void> {
  // The device key as the SDK samples derive it from the group key.
  const key = createHmac("sha256", Buffer.from(config.groupKey, "base64"))
    .update(registrationId)
    .digest("base64");
  const mqttBase = new MqttBase();
  mqttBase.setOptions({ ca: config.caPem });
  const provisioning = ProvisioningDeviceClient.create(
    config.dpsEndpoint,
    config.idScope,
    new DpsMqtt(mqttBase),
    new SymmetricKeySecurityClient(registrationId, key) as never,
  );
  const result = await new Promise<RegistrationResult>((resolve, reject) => {
    void provisioning.register((error?: Error, registered?: RegistrationResult) => {
      if (error || !registered) reject(error ?? new Error("no registration result"));
      else resolve(registered);
    });
  });
  const client = Client.fromConnectionString(
    `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${key}`,
    HubAmqp,
  );
  held.push(client);
  await client.setOptions({ ca: config.caPem });
  await client.open();
  await client.getTwin();
}

async function settledRss(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 2; i++) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return process.memoryUsage().rss;
}

async function run(config: FleetConfig): Promise<void> {
  const report = (message: FleetReport): void => void process.send?.(message);
  report({ kind: "baseline", rssBytes: await settledRss() });
  const connect = config.subject === "ours" ? connectOurs : connectRaw;
  let connected = 0;
  for (const target of config.steps) {
    const started = performance.now();
    let next = connected;
    const worker = async (): Promise<void> => {
      while (next < target) {
        const index = next++;
        await connect(config, `${config.prefix}-${index}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(config.concurrency, target - connected) }, worker));
    const connectMs = performance.now() - started;
    connected = target;
    report({ kind: "step", devices: target, connectMs, rssBytes: await settledRss() });
  }
}

// The bench ended (or died) without killing us: do not stay behind holding a thousand connections.
process.once("disconnect", () => process.exit(0));

process.once("message", (config: FleetConfig) => {
  run(config).catch((error: unknown) => {
    process.send?.({ kind: "failed", error: error instanceof Error ? error.message : String(error) });
  });
});
