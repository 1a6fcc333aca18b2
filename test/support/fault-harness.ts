// The fault suite's common parts: an emulator whose hub is reached through a TCP proxy the test owns, fixed
// ports so it can be killed and restarted on the same data, numbered telemetry streamed at a steady rate, and
// the accounting of what the hub received (missing, duplicated, out of order) and how fast the device was
// connected again.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import type { TelemetryRecord } from "../../src/emulator/hub/types.js";
import { createServer } from "node:net";
import { outOfOrderByLastCopy } from "./delivery-order.js";
import { TcpProxy } from "./tcp-proxy.js";

/** The device's retry delays in the suite: a short cap keeps each recovery bound short. */
export const SUITE_BACKOFF = { initialDelayMs: 200, maxDelayMs: 2_000, throttledMinDelayMs: 500 };
export const SUITE_ACK_TIMEOUT_MS = 3_000;
/** "Connected again within the backoff cap + 2 s after the fault clears." */
export const RECOVERY_BOUND_MS = SUITE_BACKOFF.maxDelayMs + 2_000;

export class FaultWorld {
  private received = new Map<string, string[]>();
  private constructor(
    private current: Emulator,
    readonly proxy: TcpProxy,
    private readonly options: EmulatorOptions,
    private readonly dir: string,
  ) {
    this.listen();
  }

  /**
   * An emulator on fixed free ports whose hub host name is the proxy's address. The ports are below Linux's
   * ephemeral range, so that no other test's "any free port" takes one while the emulator is down for a
   * restart or the proxy refuses connections; a port taken meanwhile by another fixed-port user means a retry.
   */
  static async start(): Promise<FaultWorld> {
    for (let attempt = 1; ; attempt++) {
      const dir = await mkdtemp(join(tmpdir(), "provisio-faults-"));
      let proxy: TcpProxy | undefined;
      try {
        const hubPort = await fixedFreePort();
        proxy = await TcpProxy.start({ host: "127.0.0.1", port: hubPort }, { port: await fixedFreePort() });
        const options: EmulatorOptions = {
          dataDir: join(dir, "emulator"),
          amqpPort: await fixedFreePort(),
          httpsPort: await fixedFreePort(),
          mqttPort: await fixedFreePort(),
          webPort: await fixedFreePort(),
          uiPort: await fixedFreePort(),
          hubPort,
          hubHostName: `127.0.0.1:${proxy.port}`,
        };
        const emulator = await startEmulator(options);
        return new FaultWorld(emulator, proxy, options, dir);
      } catch (error) {
        await proxy?.close();
        await rm(dir, { recursive: true, force: true });
        if ((error as { code?: unknown }).code !== "EADDRINUSE" || attempt >= 5) throw error;
      }
    }
  }

  get emulator(): Emulator {
    return this.current;
  }

  get hubHostName(): string {
    return this.current.endpoints.hub.hostName;
  }

  /** A symmetric-key individual enrollment; returns its key. */
  enroll(registrationId: string): string {
    const key = randomBytes(32).toString("base64");
    this.current.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
    });
    return key;
  }

  /** Message ids the hub recorded for `deviceId`, in arrival order, across restarts. */
  receivedBy(deviceId: string): string[] {
    return this.received.get(deviceId) ?? [];
  }

  /** Kills the emulator (every socket with it) and starts it again on the same data and ports. */
  async restartEmulator(downMs: number): Promise<void> {
    await this.current.close();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    this.current = await startEmulator(this.options);
    this.listen();
  }

  async close(): Promise<void> {
    await this.current.close();
    await this.proxy.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  private listen(): void {
    this.current.hub.service.on("telemetry", (record: TelemetryRecord) => {
      const ids = this.received.get(record.deviceId) ?? [];
      ids.push(String(record.systemProperties.messageId));
      this.received.set(record.deviceId, ids);
    });
  }
}

/** What a device under test must offer the suite, whether it is a DeviceSession or a Node-RED flow. */
export interface DeviceUnderTest {
  /** Sends one message; resolves when the hub accepted it, rejects with the reason it was given up. */
  send(sequence: number, messageId: string): Promise<void>;
  /** Calls `listener` with every state the device reports. */
  onState(listener: (state: string) => void): void;
  /** stop() and start() without waiting in between. */
  stopThenStart(): void;
  /** Messages the device sent again after a failure (the session's resentCount). */
  resentCount(): number;
  close(): Promise<void>;
}

export interface StreamResult {
  sent: string[];
  rejected: Array<{ id: string; error: string }>;
  /** Sends not settled within the wait. */
  unsettled: string[];
}

/** Sends numbered telemetry every `intervalMs` until stop(); stop() waits for every send to settle. */
export function streamTelemetry(
  device: DeviceUnderTest,
  prefix: string,
  intervalMs = 50,
): { stop(settleWithinMs: number): Promise<StreamResult> } {
  const sent: string[] = [];
  const rejected: StreamResult["rejected"] = [];
  const pending = new Map<string, Promise<void>>();
  let sequence = 0;
  const timer = setInterval(() => {
    sequence += 1;
    const id = `${prefix}-${String(sequence).padStart(5, "0")}`;
    sent.push(id);
    const outcome = device.send(sequence, id).then(
      () => undefined,
      (error: unknown) => {
        rejected.push({
          id,
          error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        });
      },
    );
    pending.set(id, outcome);
    void outcome.finally(() => pending.delete(id));
  }, intervalMs);
  return {
    async stop(settleWithinMs: number) {
      clearInterval(timer);
      const deadline = Date.now() + settleWithinMs;
      while (pending.size > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return { sent, rejected, unsettled: [...pending.keys()] };
    },
  };
}

export interface Delivery {
  sent: number;
  received: number;
  missing: string[];
  duplicates: number;
  /** Last copies at the hub, out of the order they were sent in (test/support/delivery-order.ts). */
  outOfOrder: string[];
}

/** Compares what was sent with what the hub recorded. */
export function account(sent: readonly string[], received: readonly string[]): Delivery {
  const seen = new Set(received);
  const wanted = new Set(sent);
  const outOfOrder = outOfOrderByLastCopy(sent, received);
  return {
    sent: sent.length,
    received: received.filter((id) => wanted.has(id)).length,
    missing: sent.filter((id) => !seen.has(id)),
    duplicates: received.length - seen.size,
    outOfOrder,
  };
}

/** Resolves with the time (ms since epoch) of the next `connected` state, or rejects after `timeoutMs`. */
export function nextConnected(
  device: { onState(listener: (state: string) => void): void },
  timeoutMs: number,
) {
  return new Promise<number>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`not connected again within ${timeoutMs} ms`));
    }, timeoutMs);
    device.onState((state) => {
      if (done || state !== "connected") return;
      done = true;
      clearTimeout(timer);
      resolve(Date.now());
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A free loopback port between 20000 and 29999 (below the ephemeral range that "port 0" draws from). */
async function fixedFreePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once("error", () => resolve(false));
      probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
}
