// The emulated IoT Hub keeps its registry and twins in its data file: a restarted hub knows the devices, their
// twins and versions, and a device connects to it again with the same key.
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Client } from "azure-iot-device";
import { Amqp } from "azure-iot-device-amqp";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const HUB = "provisio-hub-1.azure-devices.net";
const WAIT_MS = 15_000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe("IoT Hub emulator persistence", () => {
  let pki: TestPki;
  let dir: string;
  const key = randomBytes(32).toString("base64");
  const hubs: Hub[] = [];

  async function start(dataFile: string): Promise<Hub> {
    const hub = await startHub({
      tls: { key: pki.serverKey, cert: pki.serverCert },
      hostNames: [HUB],
      dataFile,
    });
    hubs.push(hub);
    return hub;
  }

  async function reportFrom(hub: Hub, deviceId: string, patch: unknown): Promise<void> {
    // GatewayHostName: sign for the production-looking hub name, connect to this listener (§1.1).
    const client = Client.fromConnectionString(
      `HostName=${HUB};GatewayHostName=localhost:${hub.port};DeviceId=${deviceId};SharedAccessKey=${key}`,
      Amqp,
    );
    try {
      await client.setOptions({ ca: pki.caCert });
      const twin = await withTimeout(client.getTwin(), "getTwin");
      const reported = (
        twin.properties as unknown as { reported: { update(p: unknown, done: (e?: Error) => void): void } }
      ).reported;
      await withTimeout(
        new Promise<void>((resolve, reject) =>
          reported.update(patch, (error) => (error ? reject(error) : resolve())),
        ),
        "reported.update",
      );
    } finally {
      await client.close();
    }
  }

  before(async () => {
    pki = createTestPki();
    dir = await mkdtemp(join(tmpdir(), "provisio-hub-"));
  });

  after(async () => {
    await Promise.all(hubs.map((hub) => hub.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps devices, tags, desired and reported properties and their versions across a restart", async () => {
    const dataFile = join(dir, "state", "hub.json");
    const first = await start(dataFile);
    first.registry.upsertDevice(
      {
        hubHostName: HUB,
        deviceId: "gateway-1",
        status: "enabled",
        authentication: { type: "sas", symmetricKey: { primaryKey: key } },
        modelId: "dtmi:provisio:gateway;1",
      },
      { tags: { site: "north" }, properties: { desired: { interval: 10 } } },
    );
    first.registry.upsertDevice({
      hubHostName: HUB,
      deviceId: "camera-7",
      status: "disabled",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: "ab".repeat(20) } },
    });
    first.service.updateTwin(HUB, "gateway-1", { properties: { desired: { mode: "eco" } } });
    await reportFrom(first, "gateway-1", { firmware: "2.1" });
    const before = first.service.getTwin(HUB, "gateway-1");
    await first.close();
    // Written atomically: the file is there and no temporary file is left behind.
    assert.deepEqual(await readdir(join(dir, "state")), ["hub.json"]);

    const second = await start(dataFile);
    assert.notEqual(second.port, 0);
    assert.deepEqual(second.service.getTwin(HUB, "gateway-1"), before);
    assert.deepEqual(before?.properties.desired, { interval: 10, mode: "eco", $version: 2 });
    assert.deepEqual(before?.properties.reported, { firmware: "2.1", $version: 2 });
    assert.deepEqual(
      second.registry.listDevices(HUB).map((device) => [device.deviceId, device.status]),
      [
        ["gateway-1", "enabled"],
        ["camera-7", "disabled"],
      ],
    );
    assert.deepEqual(second.registry.getDevice(HUB, "camera-7")?.authentication, {
      type: "selfSigned",
      x509Thumbprint: { primaryThumbprint: "AB".repeat(20) },
    });
    // The device still authenticates with its key after the restart, and its next report continues the versions.
    await reportFrom(second, "gateway-1", { firmware: "2.2" });
    assert.equal(second.service.getTwin(HUB, "gateway-1")?.properties.reported.$version, 3);
    await second.close();
    const saved = JSON.parse(await readFile(dataFile, "utf8")) as { devices: unknown[] };
    assert.equal(saved.devices.length, 2);
  });

  it("refuses to start on a data file that is not its own, instead of starting empty", async () => {
    const dataFile = join(dir, "corrupt.json");
    await writeFile(dataFile, "{ this is not json");
    await assert.rejects(start(dataFile));
    await writeFile(dataFile, JSON.stringify({ something: "else" }));
    await assert.rejects(start(dataFile), /not a provisio-hub-registry/);
  });
});
