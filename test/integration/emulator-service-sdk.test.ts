// The official service SDKs (azure-iot-provisioning-service, azure-iothub) driving the emulator's service
// REST API: they can only reach port 443 (and the hub's AMQP default 5671 is what keeps its host name free
// of a port), so the emulator listens on those ports of a dedicated loopback address. Where binding them is
// not allowed (not root, or taken) the test is skipped with the reason. The clients run in a child process
// that trusts the emulator's CA through NODE_EXTRA_CA_CERTS; verification is never turned off.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, type Twin } from "azure-iot-device";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { hubClientFor, provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";
import { runServiceSdk } from "../support/service-sdk-child.js";

/** A loopback address of its own, so other tests' listeners on 127.0.0.1 cannot collide with 443/5671. */
const HOST = "127.0.0.77";

/** Runs one service SDK operation in a child process; its stdout is one JSON line. */
const SDK_SCRIPT = `
const op = process.env.SDK_OP;
const arg = JSON.parse(process.env.SDK_ARG || "{}");
const done = (value) => { process.stdout.write(JSON.stringify(value) + "\\n"); process.exit(0); };
const fail = (error) => { process.stdout.write(JSON.stringify({ error: String(error && error.message || error), name: error && error.constructor && error.constructor.name }) + "\\n"); process.exit(0); };
(async () => {
  if (op === "createGroup") {
    const { ProvisioningServiceClient } = require("azure-iot-provisioning-service");
    const client = ProvisioningServiceClient.fromConnectionString(process.env.DPS_CS);
    const created = (await client.createOrUpdateEnrollmentGroup(arg.group)).responseBody;
    const read = (await client.getEnrollmentGroup(arg.group.enrollmentGroupId)).responseBody;
    let missing;
    try { await client.getEnrollmentGroup("no-such-group"); } catch (e) { missing = e.constructor.name; }
    return done({ created, read, missing });
  }
  if (op === "updateTwin") {
    const { Registry } = require("azure-iothub");
    const registry = Registry.fromConnectionString(process.env.HUB_CS);
    const { responseBody: twin } = await registry.getTwin(arg.deviceId);
    const { result: updated } = await twin.update(arg.patch);
    const device = (await registry.get(arg.deviceId)).responseBody;
    return done({ desired: updated.properties.desired, tags: updated.tags, connectionState: device.connectionState });
  }
  if (op === "invoke") {
    const { Client } = require("azure-iothub");
    const client = Client.fromConnectionString(process.env.HUB_CS);
    const { result } = await client.invokeDeviceMethod(arg.deviceId, arg.method);
    return done({ result });
  }
  if (op === "wrongKey") {
    const { Registry } = require("azure-iothub");
    const registry = Registry.fromConnectionString(process.env.HUB_CS.replace(/SharedAccessKey=[^;]+/, "SharedAccessKey=" + Buffer.alloc(32, 9).toString("base64")));
    await registry.getTwin(arg.deviceId);
    return done({ unexpected: "accepted" });
  }
  fail(new Error("unknown op " + op));
})().catch(fail);
`;

describe("official service SDK clients against the emulator (port 443)", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let skipReason: string | undefined;
  let device: Client | undefined;

  function runSdk(op: string, arg: unknown): Promise<Record<string, unknown>> {
    return runServiceSdk(SDK_SCRIPT, emulator, arg, op, { SDK_OP: op });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-service-sdk-"));
    try {
      emulator = await startEmulator({ dataDir: join(dir, "data"), host: HOST, webPort: 443, hubPort: 5671 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EADDRINUSE" || code === "EADDRNOTAVAIL" || code === "EPERM") {
        skipReason = `cannot listen on ${HOST}:443/5671 here (${code}); the service SDKs only reach port 443`;
      } else throw error;
    }
  });

  after(async () => {
    await device?.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates and reads an enrollment group with ProvisioningServiceClient", async (t) => {
    if (!emulator) return t.skip(skipReason);
    assert.equal(emulator.endpoints.web, `https://${HOST}/`);
    const groupKey = Buffer.alloc(32, 5).toString("base64");
    const out = await runSdk("createGroup", {
      group: {
        enrollmentGroupId: "sdk-group",
        attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
        provisioningStatus: "enabled",
      },
    });
    assert.equal(out.error, undefined, String(out.error));
    const created = out.created as { enrollmentGroupId: string; etag: string };
    const read = out.read as { enrollmentGroupId: string; etag: string };
    assert.equal(created.enrollmentGroupId, "sdk-group");
    assert.equal(read.etag, created.etag);
    assert.ok(out.missing, "a missing group is an error in the SDK");
  });

  it("updates a connected device's twin with Registry and invokes its method with Client", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const registrationId = "sdk-device-1";
    const groupKey = Buffer.alloc(32, 5).toString("base64");
    const provisioned = await provisionGroupDevice(emulator, groupKey, registrationId);
    assert.equal(
      provisioned.result.assignedHub,
      HOST,
      "port 5671 is the default, so the hub's host name has none",
    );
    device = await hubClientFor(emulator, provisioned);
    await withTimeout(device.open(), "device open");
    const twin: Twin = await withTimeout<Twin>(device.getTwin(), "getTwin");
    const received = new Promise<Record<string, unknown>>((resolvePromise) => {
      twin.on("properties.desired", (delta: Record<string, unknown>) => {
        if (delta.mode === "eco") resolvePromise(delta);
      });
    });
    device.onDeviceMethod("reboot", (request, response) => {
      const payload: unknown = request.payload;
      response.send(200, { accepted: payload }, () => undefined);
    });

    const updated = await runSdk("updateTwin", {
      deviceId: registrationId,
      patch: { tags: { floor: 2 }, properties: { desired: { mode: "eco" } } },
    });
    assert.equal(updated.error, undefined, String(updated.error));
    assert.equal((updated.desired as { mode: string }).mode, "eco");
    assert.deepEqual(updated.tags, { floor: 2 });
    assert.equal(updated.connectionState, "Connected");
    assert.equal((await withTimeout(received, "desired patch at the device")).mode, "eco");

    const invoked = await runSdk("invoke", {
      deviceId: registrationId,
      method: {
        methodName: "reboot",
        payload: { in: 5 },
        responseTimeoutInSeconds: 10,
        connectTimeoutInSeconds: 10,
      },
    });
    assert.equal(invoked.error, undefined, String(invoked.error));
    assert.deepEqual(invoked.result, { status: 200, payload: { accepted: { in: 5 } } });
  });

  it("is refused (401) when the service key is wrong", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const out = await runSdk("wrongKey", { deviceId: "sdk-device-1" });
    assert.equal(out.unexpected, undefined);
    assert.equal(out.name, "UnauthorizedError");
  });
});
