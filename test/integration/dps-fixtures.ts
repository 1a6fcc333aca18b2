// Shared by the dps-*.test.ts files: a DPS emulator on loopback TLS with an in-memory IoT hub registry
// stand-in, and the unmodified Azure device SDK pointed at it with the test CA trusted explicitly.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, request } from "node:https";
import { connect as tlsConnect } from "node:tls";
import { generate } from "mqtt-packet";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProvisioningDeviceClient } from "azure-iot-provisioning-device";
import { Amqp, AmqpWs } from "azure-iot-provisioning-device-amqp";
import { Http } from "azure-iot-provisioning-device-http";
import { Mqtt, MqttWs } from "azure-iot-provisioning-device-mqtt";
import type { AmqpBaseTransportConfig } from "azure-iot-amqp-base";
import { MqttBase } from "azure-iot-mqtt-base";
import { createRequire } from "node:module";
import { SymmetricKeySecurityClient } from "azure-iot-security-symmetric-key";
import { X509Security } from "azure-iot-security-x509";
import {
  EnrollmentStore,
  startDps,
  type Dps,
  type DpsHubDeviceRecord,
  type DpsHubRegistry,
  type DpsHubService,
  type DpsOptions,
  type DpsTwinSeed,
  type LinkedHub,
} from "../../src/emulator/dps/index.js";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

export const ID_SCOPE = "0ne00EMU001";

/** A fresh random 256-bit symmetric key, base64 (what DPS and the hub take as a primary key). */
export const newSymmetricKey = (): string => randomBytes(32).toString("base64");

interface StoredDevice {
  record: DpsHubDeviceRecord;
  tags: Record<string, unknown>;
  desired: Record<string, unknown>;
}

/** Minimal stand-in for the hub emulator's registry + twin store (the parts DPS uses). */
export class MemoryHub implements DpsHubRegistry, DpsHubService {
  readonly devices = new Map<string, StoredDevice>();
  readonly deleted: string[] = [];

  private static key(hub: string, deviceId: string): string {
    return `${hub.toLowerCase()}|${deviceId.toLowerCase()}`;
  }

  upsertDevice(device: DpsHubDeviceRecord, twin?: DpsTwinSeed): void {
    const key = MemoryHub.key(device.hubHostName, device.deviceId);
    const existing = this.devices.get(key);
    this.devices.set(key, {
      record: structuredClone(device),
      tags: twin ? structuredClone(twin.tags ?? {}) : (existing?.tags ?? {}),
      desired: twin ? structuredClone(twin.properties?.desired ?? {}) : (existing?.desired ?? {}),
    });
  }

  getDevice(hubHostName: string, deviceId: string): DpsHubDeviceRecord | undefined {
    return this.devices.get(MemoryHub.key(hubHostName, deviceId))?.record;
  }

  deleteDevice(hubHostName: string, deviceId: string): boolean {
    this.deleted.push(`${hubHostName}/${deviceId}`);
    return this.devices.delete(MemoryHub.key(hubHostName, deviceId));
  }

  getTwin(hubHostName: string, deviceId: string) {
    const stored = this.devices.get(MemoryHub.key(hubHostName, deviceId));
    return stored && { tags: stored.tags, properties: { desired: stored.desired } };
  }

  /** Test helper: what a service app would do with a twin patch. */
  setTwin(
    hubHostName: string,
    deviceId: string,
    tags: Record<string, unknown>,
    desired: Record<string, unknown>,
  ): void {
    const stored = this.devices.get(MemoryHub.key(hubHostName, deviceId));
    if (!stored) throw new Error(`no device ${deviceId} on ${hubHostName}`);
    stored.tags = tags;
    stored.desired = desired;
  }

  hubOf(deviceId: string): string[] {
    return [...this.devices.values()]
      .filter((d) => d.record.deviceId === deviceId)
      .map((d) => d.record.hubHostName);
  }
}

export interface TestDps {
  dps: Dps;
  pki: TestPki;
  hub: MemoryHub;
  store: EnrollmentStore;
  dataFile: string;
  log: string[];
  /** Restarts the emulator on a fresh store loaded from the same file (ports change). */
  restart(): Promise<void>;
  dispose(): Promise<void>;
}

let sharedPki: TestPki | undefined;
/** One PKI per test process: RSA key generation is the slow part. */
export function testPki(): TestPki {
  return (sharedPki ??= createTestPki());
}

export async function startTestDps(
  options: {
    linkedHubs?: LinkedHub[];
    dps?: Partial<Omit<DpsOptions, "idScope" | "store" | "hubs">>;
  } = {},
): Promise<TestDps> {
  const pki = testPki();
  const dir = await mkdtemp(join(tmpdir(), "provisio-dps-"));
  const dataFile = join(dir, "dps.json");
  const hub = new MemoryHub();
  const log: string[] = [];
  const linkedHubs = options.linkedHubs ?? [{ hostName: "hub-1.emulator.local" }];
  const start = async (store: EnrollmentStore) =>
    startDps({
      tls: { key: pki.serverKey, cert: pki.serverCert },
      idScope: ID_SCOPE,
      store,
      hubs: { registry: hub, service: hub, linkedHubs },
      log: (line) => log.push(line),
      ...options.dps,
    });
  const handle: TestDps = {
    dps: undefined as unknown as Dps,
    pki,
    hub,
    store: new EnrollmentStore({ file: dataFile }),
    dataFile,
    log,
    async restart() {
      await handle.dps.close();
      handle.store = new EnrollmentStore({ file: dataFile });
      handle.dps = await start(handle.store);
    },
    async dispose() {
      await handle.dps.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  handle.dps = await start(handle.store);
  return handle;
}

// ---- the unmodified device SDK, trusting the test CA ----

// The transports carry their own copies of the protocol bases; subclass and configure those very copies.
const fromAmqpTransport = createRequire(require.resolve("azure-iot-provisioning-device-amqp"));
const fromHttpTransport = createRequire(require.resolve("azure-iot-provisioning-device-http"));
const { Amqp: AmqpBase } = fromAmqpTransport("azure-iot-amqp-base") as typeof import("azure-iot-amqp-base");
const { Http: HttpBase } = fromHttpTransport("azure-iot-http-base") as typeof import("azure-iot-http-base");

/** docs/dps-protocol.md §1.1: an amqp base that adds the CA to every connect (SAS and TPM). */
class TrustingAmqpBase extends AmqpBase {
  constructor(private readonly ca: string) {
    super(true);
  }
  override connect(
    config: AmqpBaseTransportConfig,
    done: Parameters<InstanceType<typeof AmqpBase>["connect"]>[1],
  ): void {
    config.sslOptions = { ...(config.sslOptions as object), ca: this.ca };
    super.connect(config, done);
  }
}

export type TransportName = "amqp" | "https" | "mqtt";

export interface SdkEndpoint {
  provisioningHost: string;
  transport: Amqp | Http | Mqtt | AmqpWs | MqttWs;
}

/** The WebSocket transports: always wss://{host}:443/$iothub/websocket (docs/dps-protocol.md §1). */
export function sdkWebSocketEndpoint(
  host: string,
  ca: string,
  transport: "amqp-ws" | "mqtt-ws",
): SdkEndpoint {
  if (transport === "amqp-ws")
    return { provisioningHost: host, transport: new AmqpWs(new TrustingAmqpBase(ca) as never) };
  const base = new MqttBase();
  base.setOptions({ ca });
  return { provisioningHost: host, transport: new MqttWs(base) };
}

export function sdkEndpoint(dps: Dps, ca: string, transport: TransportName): SdkEndpoint {
  switch (transport) {
    case "amqp":
      return {
        provisioningHost: `127.0.0.1:${dps.ports.amqp}`,
        transport: new Amqp(new TrustingAmqpBase(ca) as never),
      };
    case "https": {
      // The HTTP transport cannot take host:port; the agent's defaultPort (set after construction) can.
      const agent = new Agent({ ca }) as Agent & { defaultPort: number };
      agent.defaultPort = dps.ports.https!;
      const base = new HttpBase();
      base.setOptions({ ca, http: { agent } });
      return { provisioningHost: "127.0.0.1", transport: new Http(base as never) };
    }
    case "mqtt": {
      const base = new MqttBase();
      base.setOptions({ ca });
      return { provisioningHost: `127.0.0.1:${dps.ports.mqtt}`, transport: new Mqtt(base) };
    }
  }
}

export interface RegistrationOutcome {
  registrationId: string;
  assignedHub: string;
  deviceId: string;
  status: string;
  substatus?: string;
  payload?: unknown;
  [key: string]: unknown;
}

const REGISTER_LIMIT_MS = 40_000;
const TIMED_OUT = "register() did not finish in time";

/** For assert.rejects: the SDK reported a refusal (not our own time limit). */
export function isRefusal(error: Error): boolean {
  assert.notEqual(error.message, TIMED_OUT, "the device got no answer instead of a refusal");
  return true;
}

/** Runs client.register() with a bounded wait; rejects with the SDK's error. */
export function register(
  endpoint: SdkEndpoint,
  security: unknown,
  payload?: unknown,
): Promise<RegistrationOutcome & { raw: unknown }> {
  const client = ProvisioningDeviceClient.create(
    endpoint.provisioningHost,
    ID_SCOPE,
    endpoint.transport,
    security as never,
  );
  if (payload !== undefined) client.setProvisioningPayload(payload as never);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(TIMED_OUT)), REGISTER_LIMIT_MS);
    void client.register((error?: Error, result?: unknown) => {
      clearTimeout(timer);
      if (error) return reject(error);
      // TPM hands back the whole DeviceRegistrationResult, the others the registrationState.
      const state = ((result as { registrationState?: unknown }).registrationState ??
        result) as RegistrationOutcome;
      resolve({ ...state, raw: result });
    });
  });
}

export function symmetricKeyDevice(registrationId: string, key: string): SymmetricKeySecurityClient {
  return new SymmetricKeySecurityClient(registrationId, key);
}

export function x509Device(
  registrationId: string,
  material: { cert: string; key: string },
  transport: TransportName | "amqp-ws" | "mqtt-ws",
  ca: string,
): X509Security {
  // AMQP takes the CA from the X.509 object (it becomes the TLS options); HTTPS/MQTT get it from their base.
  return new X509Security(
    registrationId,
    (transport === "amqp" || transport === "amqp-ws" ? { ...material, ca } : material) as never,
  );
}

export const TRANSPORTS: TransportName[] = ["amqp", "https", "mqtt"];

export function symmetricKeyEnrollment(registrationId: string, primaryKey: string, extra: object = {}) {
  return {
    registrationId,
    attestation: { type: "symmetricKey" as const, symmetricKey: { primaryKey } },
    ...extra,
  };
}

/** A raw HTTPS call to the emulator (TLS verified against the test CA). */
export async function fetchDps(
  env: TestDps,
  path: string,
  init: { method: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: env.dps.ports.https,
        path,
        method: init.method,
        ca: env.pki.caCert,
        headers: { "content-type": "application/json", ...init.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("request timed out")));
    req.end(init.body);
  });
}

/**
 * Registers a symmetric key device with plain HTTPS requests (PUT register, then GET the operation until it
 * is no longer assigning; bounded). Faster than the SDK, which waits retry-after before each poll.
 */
export async function provisionOverHttps(
  env: TestDps,
  registrationId: string,
  deviceKey: string,
  payload?: unknown,
): Promise<{
  status: string;
  registrationState?: RegistrationOutcome & { errorCode?: number; errorMessage?: string };
}> {
  const token = await buildSasToken(
    `${ID_SCOPE}/registrations/${registrationId}`,
    Math.floor(Date.now() / 1000) + 600,
    (data) => hmacSha256(Buffer.from(deviceKey, "base64"), data),
    "registration",
  );
  const base = `/${ID_SCOPE}/registrations/${registrationId}`;
  const headers = { authorization: token };
  const started = await fetchDps(env, `${base}/register?api-version=2019-03-31`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ registrationId, ...(payload !== undefined ? { payload } : {}) }),
  });
  if (started.status !== 202)
    throw new Error(`register answered ${started.status}: ${JSON.stringify(started.body)}`);
  const operationId = (started.body as { operationId: string }).operationId;
  for (let attempt = 0; attempt < 100; attempt++) {
    const polled = await fetchDps(env, `${base}/operations/${operationId}?api-version=2019-03-31`, {
      method: "GET",
      headers,
    });
    if (polled.status >= 300) throw new Error(`poll answered ${polled.status}`);
    const body = polled.body as { status: string };
    if (body.status !== "assigning") return body;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("the operation stayed assigning");
}

/** CONNECTs with the given username and returns the CONNACK return code. */
export function mqttConnack(port: number, ca: string, clientId: string, username: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () =>
      socket.write(
        generate({
          cmd: "connect",
          protocolId: "MQTT",
          protocolVersion: 4,
          clientId,
          clean: true,
          keepalive: 60,
          username,
          password: Buffer.from("p"),
        }),
      ),
    );
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no CONNACK"));
    }, 10_000);
    socket.on("error", () => undefined);
    socket.once("data", (data: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data[3]); // CONNACK: 0x20 0x02 flags returnCode
    });
  });
}
