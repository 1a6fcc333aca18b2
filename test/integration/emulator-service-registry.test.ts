// The official service SDKs (azure-iothub Registry, azure-iot-provisioning-service) on the registry and twin
// details real enrollment scripts hit: desired properties cleared with null (and the device told), re-enrolling
// after deleting enrollment and device, a signing certificate given as base64 of a PEM, IoT Edge capability,
// bulk registry operations, the twin query with paging, and the registry statistics. Like
// emulator-service-sdk.test.ts, the emulator listens on 443 of a loopback address of its own and the SDKs run
// in a child process that trusts its CA through NODE_EXTRA_CA_CERTS.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client, Twin } from "azure-iot-device";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  hubClientFor,
  provisionGroupDevice,
  provisionSymmetricKeyDevice,
  withTimeout,
} from "../support/emulator-fixture.js";
import { runServiceSdk } from "../support/service-sdk-child.js";
import { createTestPki } from "../support/test-certs.js";

/** A loopback address of its own (not used by other test files), so 443 is free for this file. */
const HOST = "127.0.0.79";

/** Runs one service SDK scenario in a child process; its stdout is one JSON line. */
const SDK_SCRIPT = `
const op = process.env.SDK_OP;
const arg = JSON.parse(process.env.SDK_ARG || "{}");
const done = (value) => { process.stdout.write(JSON.stringify(value) + "\\n"); process.exit(0); };
const fail = (error) => { process.stdout.write(JSON.stringify({ error: String(error && error.message || error), name: error && error.constructor && error.constructor.name }) + "\\n"); process.exit(0); };
const registry = () => require("azure-iothub").Registry.fromConnectionString(process.env.HUB_CS);
const provisioning = () => require("azure-iot-provisioning-service").ProvisioningServiceClient.fromConnectionString(process.env.DPS_CS);
(async () => {
  if (op === "clearDesired") {
    const { responseBody: twin } = await registry().getTwin(arg.deviceId);
    const { result: updated } = await twin.update({ properties: { desired: null } });
    return done({ desired: updated.properties.desired });
  }
  if (op === "putEnrollment") {
    return done({ enrollment: (await provisioning().createOrUpdateIndividualEnrollment(arg.enrollment)).responseBody });
  }
  if (op === "deleteEnrollmentAndDevice") {
    await provisioning().deleteIndividualEnrollment(arg.registrationId);
    await registry().delete(arg.deviceId);
    return done({});
  }
  if (op === "putGroup") {
    return done({ group: (await provisioning().createOrUpdateEnrollmentGroup(arg.group)).responseBody });
  }
  if (op === "createEdge") {
    await registry().create({ deviceId: arg.deviceId, capabilities: { iotEdge: true } });
    const device = (await registry().get(arg.deviceId)).responseBody;
    const twin = (await registry().getTwin(arg.deviceId)).responseBody;
    return done({ device: device.capabilities, twin: twin.capabilities });
  }
  if (op === "bulk") {
    const r = registry();
    const added = (await r.addDevices(arg.devices)).responseBody;
    const again = (await r.addDevices([arg.devices[0]])).responseBody;
    const updated = (await r.updateDevices([{ deviceId: arg.devices[1].deviceId, status: "disabled" }], true)).responseBody;
    const stats = (await r.getRegistryStatistics()).responseBody;
    const removed = (await r.removeDevices([{ deviceId: arg.devices[0].deviceId }], true)).responseBody;
    const missing = (await r.removeDevices([{ deviceId: "never-added" }], true)).responseBody;
    const statsAfter = (await r.getRegistryStatistics()).responseBody;
    const disabled = (await r.get(arg.devices[1].deviceId)).responseBody.status;
    return done({ added, again, updated, stats, removed, missing, statsAfter, disabled });
  }
  if (op === "query") {
    const query = registry().createQuery(arg.query, arg.pageSize);
    const pages = [];
    while (query.hasMoreResults && pages.length < 20) {
      const { result } = await query.nextAsTwin();
      pages.push(result.map((twin) => twin.deviceId));
    }
    return done({ pages });
  }
  fail(new Error("unknown op " + op));
})().catch(fail);
`;

describe("official service SDKs on registry and twin details (port 443)", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let skipReason: string | undefined;
  const devices: Client[] = [];

  function runSdk(op: string, arg: unknown): Promise<Record<string, unknown>> {
    return runServiceSdk(SDK_SCRIPT, emulator, arg, op, { SDK_OP: op });
  }

  async function sdk(op: string, arg: unknown): Promise<Record<string, unknown>> {
    const out = await runSdk(op, arg);
    assert.equal(out.error, undefined, `${op}: ${String(out.error)}`);
    return out;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-service-registry-"));
    try {
      // The hub on AMQP's default port keeps its host name (and the service connection string) free of a port.
      emulator = await startEmulator({ dataDir: join(dir, "data"), host: HOST, webPort: 443, hubPort: 5671 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EADDRINUSE" || code === "EADDRNOTAVAIL" || code === "EPERM") {
        skipReason = `cannot listen on ${HOST}:443/5671 here (${code}); the service SDKs only reach port 443`;
      } else throw error;
    }
  });

  after(async () => {
    for (const device of devices) await device.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("clears all desired properties with desired: null, and the connected device gets the patch", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const groupKey = Buffer.alloc(32, 3).toString("base64");
    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: "null-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
      initialTwin: { tags: {}, properties: { desired: { interval: 10, mode: "eco" } } },
    } as never);
    const provisioned = await provisionGroupDevice(emulator, groupKey, "null-device");
    const device = await hubClientFor(emulator, provisioned);
    devices.push(device);
    await withTimeout(device.open(), "device open");
    const twin: Twin = await withTimeout<Twin>(device.getTwin(), "getTwin");
    assert.equal((twin.properties.desired as { interval?: number }).interval, 10);
    const cleared = new Promise<Record<string, unknown>>((resolvePromise) => {
      twin.on("properties.desired", (delta: Record<string, unknown>) => {
        if ("interval" in delta && delta.interval === null) resolvePromise(delta);
      });
    });

    const out = await sdk("clearDesired", { deviceId: "null-device" });
    const desired = out.desired as Record<string, unknown>;
    assert.deepEqual(
      Object.keys(desired).filter((key) => !key.startsWith("$")),
      [],
      "no desired property is left",
    );
    const delta = await withTimeout(cleared, "the clearing patch at the device");
    assert.equal(delta.mode, null);
  });

  it("gives a re-enrolled device the new initial twin, not the stale registration", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const registrationId = "reenrolled-device";
    const key = Buffer.alloc(32, 4).toString("base64");
    const enrollment = (desired: Record<string, unknown>) => ({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
      initialTwin: { tags: {}, properties: { desired } },
    });
    await sdk("putEnrollment", { enrollment: enrollment({ generation: "A" }) });
    const first = await provisionSymmetricKeyDevice(emulator, key, registrationId);
    const hub = first.result.assignedHub;
    assert.equal(emulator.hub.service.getTwin(hub, registrationId)?.properties.desired.generation, "A");

    await sdk("deleteEnrollmentAndDevice", { registrationId, deviceId: registrationId });
    assert.equal(emulator.hub.registry.getDevice(hub, registrationId), undefined);
    await sdk("putEnrollment", { enrollment: enrollment({ generation: "B" }) });
    const second = await provisionSymmetricKeyDevice(emulator, key, registrationId);
    assert.equal(second.result.assignedHub, hub);
    assert.equal(emulator.hub.service.getTwin(hub, registrationId)?.properties.desired.generation, "B");
  });

  it("accepts an enrollment group signing certificate given as base64 of a PEM", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const pem = createTestPki().caCert;
    const out = await sdk("putGroup", {
      group: {
        enrollmentGroupId: "pem-base64-group",
        attestation: {
          type: "x509",
          x509: { signingCertificates: { primary: { certificate: Buffer.from(pem).toString("base64") } } },
        },
      },
    });
    const group = out.group as {
      attestation: { x509: { signingCertificates: { primary: { info: { subjectName: string } } } } };
    };
    assert.match(
      group.attestation.x509.signingCertificates.primary.info.subjectName,
      /Provisio Test Root CA/,
    );
  });

  it("keeps capabilities.iotEdge on a device created with Registry", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const out = await sdk("createEdge", { deviceId: "edge-gateway-1" });
    assert.deepEqual(out.device, { iotEdge: true });
    assert.deepEqual(out.twin, { iotEdge: true });
  });

  it("adds, updates and removes devices in bulk, and counts them in the statistics", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const before = emulator.hub.registry.listDevices(emulator.endpoints.hub.hostName).length;
    const out = await sdk("bulk", {
      devices: [
        { deviceId: "bulk-1" },
        { deviceId: "bulk-2" },
        { deviceId: "bulk-3", capabilities: { iotEdge: true } },
      ],
    });
    assert.deepEqual(out.added, { isSuccessful: true, errors: [], warnings: [] });
    const again = out.again as {
      isSuccessful: boolean;
      errors: Array<{ deviceId: string; errorCode: number }>;
    };
    assert.equal(again.isSuccessful, false);
    assert.deepEqual(
      again.errors.map((e) => [e.deviceId, e.errorCode]),
      [["bulk-1", 409001]],
    );
    assert.equal((out.updated as { isSuccessful: boolean }).isSuccessful, true);
    assert.equal(out.disabled, "disabled");
    assert.deepEqual(out.stats, {
      totalDeviceCount: before + 3,
      enabledDeviceCount: before + 2,
      disabledDeviceCount: 1,
    });
    assert.equal((out.removed as { isSuccessful: boolean }).isSuccessful, true);
    const missing = out.missing as { isSuccessful: boolean; errors: Array<{ errorCode: number }> };
    assert.equal(missing.isSuccessful, false);
    assert.equal(missing.errors[0]?.errorCode, 404001);
    assert.equal((out.statsAfter as { totalDeviceCount: number }).totalDeviceCount, before + 2);
    const edge = emulator.hub.registry.getDevice(emulator.endpoints.hub.hostName, "bulk-3");
    assert.deepEqual(edge?.capabilities, { iotEdge: true });
  });

  it("queries devices by id, status, tags and properties, a page at a time", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const hub = emulator.endpoints.hub.hostName;
    const key = Buffer.alloc(32, 6).toString("base64");
    for (const [index, site] of ["lab", "lab", "plant", "lab", "lab"].entries()) {
      emulator.hub.registry.upsertDevice(
        {
          hubHostName: hub,
          deviceId: `q-${index}`,
          status: index === 4 ? "disabled" : "enabled",
          authentication: { type: "sas", symmetricKey: { primaryKey: key } },
        },
        { tags: { site, floor: index }, properties: { desired: { mode: index % 2 === 0 ? "eco" : "full" } } },
      );
    }
    const labEnabled = await sdk("query", {
      query: "SELECT * FROM devices WHERE tags.site = 'lab' AND status = 'enabled'",
      pageSize: 2,
    });
    assert.deepEqual(labEnabled.pages, [["q-0", "q-1"], ["q-3"]]);

    const mixed = await sdk("query", {
      query:
        "SELECT * FROM devices WHERE (properties.desired.mode = 'eco' OR deviceId IN ['q-1']) AND tags.floor >= 1 AND connectionState = 'Disconnected'",
      pageSize: 10,
    });
    assert.deepEqual(mixed.pages, [["q-1", "q-2", "q-4"]]);

    const invalid = await runSdk("query", {
      query: "SELECT deviceId FROM devices GROUP BY status",
      pageSize: 10,
    });
    assert.ok(invalid.error, "an unsupported query is refused");
  });
});
