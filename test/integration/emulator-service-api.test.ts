// The service REST API on its own: real HTTPS with the emulator's CA, SAS auth, the real DPS enrollment
// store, and a small in-memory hub that honours the hub contract (the real hub is covered end to end in
// emulator-end-to-end.test.ts).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { request } from "node:https";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { ensureCertificates } from "../../src/emulator/certs.js";
import { EnrollmentStore } from "../../src/emulator/dps/enrollment-store.js";
import { startServiceApi, type ServiceApiServer } from "../../src/emulator/service-api/index.js";
import type {
  CloudToDeviceMessage,
  FaultLink,
  HubDeviceRecord,
  HubFaults,
  HubRegistry,
  HubService,
  MethodRequest,
  TelemetryRecord,
  TwinDocument,
  TwinSeed,
} from "../../src/emulator/hub/types.js";

const HUB = "localhost:15999";
const dpsKey = Buffer.alloc(32, 1).toString("base64");
const hubKey = Buffer.alloc(32, 2).toString("base64");

class StatusError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

/** Just enough hub for the REST routes: a registry, twins with etags, recorded C2D, scripted methods. */
class FakeHub extends EventEmitter implements HubRegistry, HubService, HubFaults {
  devices = new Map<string, HubDeviceRecord>();
  twins = new Map<string, TwinDocument>();
  c2d: CloudToDeviceMessage[] = [];
  telemetry: TelemetryRecord[] = [];
  faultCalls: string[] = [];
  online = new Set<string>();
  upsertDevice(device: HubDeviceRecord, twin?: TwinSeed): void {
    this.devices.set(device.deviceId, device);
    if (!this.twins.has(device.deviceId)) {
      this.twins.set(device.deviceId, {
        deviceId: device.deviceId,
        etag: "AAAAAAAAAAE=",
        version: 1,
        status: device.status,
        tags: twin?.tags ?? {},
        properties: {
          desired: { ...(twin?.properties?.desired ?? {}), $version: 1 },
          reported: { $version: 1 },
        },
      });
    }
  }
  getDevice(_hub: string, deviceId: string) {
    return this.devices.get(deviceId);
  }
  listDevices() {
    return [...this.devices.values()];
  }
  deleteDevice(_hub: string, deviceId: string) {
    this.twins.delete(deviceId);
    return this.devices.delete(deviceId);
  }
  setStatus(_hub: string, deviceId: string, status: "enabled" | "disabled") {
    const device = this.devices.get(deviceId);
    if (device) device.status = status;
  }
  getTwin(_hub: string, deviceId: string) {
    return this.twins.get(deviceId);
  }
  updateTwin(_hub: string, deviceId: string, patch: TwinSeed, ifMatch?: string): TwinDocument {
    const twin = this.twins.get(deviceId);
    if (!twin) throw new StatusError(404, "DeviceNotFound", "no device");
    if (ifMatch !== undefined && ifMatch !== twin.etag)
      throw new StatusError(412, "PreconditionFailed", "etag");
    const version = twin.properties.desired.$version + 1;
    twin.properties.desired = {
      ...twin.properties.desired,
      ...(patch.properties?.desired ?? {}),
      $version: version,
    };
    twin.tags = { ...twin.tags, ...(patch.tags ?? {}) };
    twin.version += 1;
    twin.etag = Buffer.from(`etag-${twin.version}`).toString("base64");
    return twin;
  }
  replaceTwin(hub: string, deviceId: string, twin: TwinSeed, ifMatch?: string): TwinDocument {
    return this.updateTwin(hub, deviceId, twin, ifMatch);
  }
  invokeMethod(_hub: string, deviceId: string, request: MethodRequest) {
    if (!this.online.has(deviceId)) {
      return Promise.reject(new StatusError(404, "DeviceNotOnline", "device not online"));
    }
    return Promise.resolve({ status: 200, payload: { echo: request.payload, method: request.methodName } });
  }
  sendCloudToDevice(_hub: string, _deviceId: string, message: CloudToDeviceMessage) {
    this.c2d.push(message);
  }
  recentTelemetry(_hub: string, deviceId?: string, limit = 100) {
    return this.telemetry.filter((r) => deviceId === undefined || r.deviceId === deviceId).slice(-limit);
  }
  isConnected(_hub: string, deviceId: string) {
    return this.online.has(deviceId);
  }
  connectionCount() {
    return this.online.size;
  }
  dropConnection(_hub: string, deviceId: string) {
    this.faultCalls.push(`drop ${deviceId}`);
    return this.online.has(deviceId);
  }
  detachLink(_hub: string, deviceId: string, link: FaultLink) {
    this.faultCalls.push(`detach ${deviceId} ${link}`);
    return true;
  }
  rejectNextTokens(count: number) {
    this.faultCalls.push(`reject ${count}`);
  }
  throttleNext(count: number) {
    this.faultCalls.push(`throttle ${count}`);
  }
  exceedQuotaNext(count: number) {
    this.faultCalls.push(`quota ${count}`);
  }
  throttleTwinGetsNext(count: number) {
    this.faultCalls.push(`throttle twin gets ${count}`);
  }
  delayAcks(ms: number) {
    this.faultCalls.push(`delay ${ms}`);
  }
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

describe("service REST API", () => {
  let dir: string;
  let ca: string;
  let api: ServiceApiServer;
  const hub = new FakeHub();
  const dpsPolicyHostNames: string[] = [];
  const dpsFaultCalls: unknown[] = [];
  const dpsHost = () => `localhost:${api.port}`;

  const sas = (resource: string, key: string, keyName: string) =>
    buildSasToken(
      resource,
      Math.floor(Date.now() / 1000) + 600,
      (d) => hmacSha256(Buffer.from(key, "base64"), d),
      keyName,
    );
  const dpsToken = () => sas(dpsHost(), dpsKey, "provisioningserviceowner");
  const hubToken = () => sas(HUB, hubKey, "iothubowner");

  function call(
    method: string,
    path: string,
    options: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          servername: "localhost",
          port: api.port,
          method,
          path,
          ca,
          headers: {
            ...(options.token ? { Authorization: options.token } : {}),
            ...(options.body !== undefined ? { "Content-Type": "application/json; charset=utf-8" } : {}),
            ...options.headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text,
              json: () => JSON.parse(text) as unknown,
            });
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(options.body);
    });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-service-api-"));
    const certs = await ensureCertificates({ dataDir: dir });
    ca = certs.caCertPem;
    const store = new EnrollmentStore({ file: join(dir, "enrollments.json") });
    api = await startServiceApi({
      tls: { key: certs.serverKeyPem, cert: certs.serverCertPem },
      policies: {
        // The DPS host name carries the API's own port, known only after listening: filled in below.
        dps: { hostNames: dpsPolicyHostNames, keyName: "provisioningserviceowner", key: dpsKey },
        hub: { hostNames: [HUB], keyName: "iothubowner", key: hubKey },
      },
      hub: { registry: hub, service: hub, faults: hub },
      defaultHubHostName: HUB,
      dpsStore: store,
      dpsFaults: { rejectNextRegistrations: (body) => dpsFaultCalls.push(body) },
    });
    // Policies are read per request: point the DPS policy at the real port now.
    dpsPolicyHostNames.push(dpsHost());
  });

  after(async () => {
    await api?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers 401 without a token and with a token signed by a wrong key", async () => {
    const without = await call("GET", "/twins/d1?api-version=2021-04-12");
    assert.equal(without.status, 401);
    const wrong = await call("GET", "/twins/d1?api-version=2021-04-12", {
      token: await sas(HUB, Buffer.alloc(32, 3).toString("base64"), "iothubowner"),
    });
    assert.equal(wrong.status, 401);
    assert.match(
      String((wrong.json() as { Message: string }).Message),
      /^ErrorCode:IotHubUnauthorizedAccess;/,
    );
    const dpsKeyOnHubRoute = await call("GET", "/twins/d1", { token: await sas(HUB, dpsKey, "iothubowner") });
    assert.equal(dpsKeyOnHubRoute.status, 401);
  });

  it("creates, reads, updates with etag and deletes an individual enrollment in Azure's shape", async () => {
    const token = await dpsToken();
    const enrollment = {
      registrationId: "sk-device-1",
      attestation: { type: "symmetricKey" },
      initialTwin: { tags: { site: "a" } },
    };
    const created = await call("PUT", "/enrollments/sk-device-1?api-version=2021-10-01", {
      token,
      body: JSON.stringify(enrollment),
    });
    assert.equal(created.status, 200, created.text);
    const body = created.json() as {
      registrationId: string;
      etag: string;
      provisioningStatus: string;
      attestation: { symmetricKey: { primaryKey: string } };
    };
    assert.equal(body.registrationId, "sk-device-1");
    assert.equal(body.provisioningStatus, "enabled");
    assert.ok(
      Buffer.from(body.attestation.symmetricKey.primaryKey, "base64").length >= 16,
      "a key was generated",
    );
    const read = await call("GET", "/enrollments/SK-DEVICE-1?api-version=2021-10-01", { token });
    assert.equal(read.status, 200);
    assert.equal((read.json() as { etag: string }).etag, body.etag);
    const stale = await call("PUT", "/enrollments/sk-device-1", {
      token,
      body: JSON.stringify({ ...enrollment, provisioningStatus: "disabled" }),
      headers: { "If-Match": '"not-the-etag"' },
    });
    assert.equal(stale.status, 412);
    assert.equal(typeof (stale.json() as { errorCode: number }).errorCode, "number", "DPS error shape");
    const updated = await call("PUT", "/enrollments/sk-device-1", {
      token,
      body: JSON.stringify({ ...enrollment, provisioningStatus: "disabled" }),
      headers: { "If-Match": body.etag },
    });
    assert.equal(updated.status, 200, updated.text);
    assert.equal((updated.json() as { provisioningStatus: string }).provisioningStatus, "disabled");
    const query = await call("POST", "/enrollments/query?api-version=2021-10-01", {
      token,
      body: JSON.stringify({ query: "*" }),
    });
    assert.deepEqual(
      (query.json() as Array<{ registrationId: string }>).map((e) => e.registrationId),
      ["sk-device-1"],
    );
    assert.equal((await call("DELETE", "/enrollments/sk-device-1", { token })).status, 204);
    const gone = await call("GET", "/enrollments/sk-device-1", { token });
    assert.equal(gone.status, 404);
    assert.equal((gone.json() as { errorCode: number }).errorCode, 404201);
  });

  it("creates and deletes enrollment groups and answers 404 for unknown registrations", async () => {
    const token = await dpsToken();
    const group = { enrollmentGroupId: "floor-1", attestation: { type: "symmetricKey" } };
    const created = await call("PUT", "/enrollmentGroups/floor-1?api-version=2021-10-01", {
      token,
      body: JSON.stringify(group),
    });
    assert.equal(created.status, 200, created.text);
    assert.equal((created.json() as { enrollmentGroupId: string }).enrollmentGroupId, "floor-1");
    const mismatch = await call("PUT", "/enrollmentGroups/floor-2", { token, body: JSON.stringify(group) });
    assert.equal(mismatch.status, 400);
    assert.equal((await call("GET", "/enrollmentGroups/floor-1", { token })).status, 200);
    assert.equal((await call("DELETE", "/enrollmentGroups/floor-1", { token })).status, 204);
    assert.equal((await call("GET", "/enrollmentGroups/floor-1", { token })).status, 404);
    assert.equal((await call("GET", "/registrations/nobody?api-version=2021-10-01", { token })).status, 404);
  });

  it("refuses the hub key on DPS routes", async () => {
    const reply = await call("GET", "/enrollments/x", {
      token: await sas(dpsHost(), hubKey, "provisioningserviceowner"),
    });
    assert.equal(reply.status, 401);
  });

  it("creates a device identity, reads it, and deletes it", async () => {
    const token = await hubToken();
    const created = await call("PUT", "/devices/dev-a?api-version=2021-04-12", {
      token,
      body: JSON.stringify({ deviceId: "dev-a", authentication: { type: "sas" } }),
    });
    assert.equal(created.status, 200, created.text);
    const device = created.json() as {
      authentication: { type: string; symmetricKey: { primaryKey: string } };
      connectionState: string;
    };
    assert.equal(device.authentication.type, "sas");
    assert.ok(device.authentication.symmetricKey.primaryKey.length > 0);
    assert.equal(device.connectionState, "Disconnected");
    assert.equal(hub.devices.get("dev-a")?.hubHostName, HUB, "the hub is the one the token names");
    const read = await call("GET", "/devices/dev-a", { token });
    assert.equal(read.status, 200);
    assert.equal((await call("DELETE", "/devices/dev-a", { token })).status, 204);
    const gone = await call("GET", "/devices/dev-a", { token });
    assert.equal(gone.status, 404);
    assert.match((gone.json() as { Message: string }).Message, /^ErrorCode:DeviceNotFound;/);
  });

  it("reads and patches a twin, honouring If-Match", async () => {
    const token = await hubToken();
    hub.upsertDevice({
      hubHostName: HUB,
      deviceId: "dev-t",
      status: "enabled",
      authentication: { type: "certificateAuthority" },
    });
    const twin = await call("GET", "/twins/dev-t?api-version=2021-04-12", { token });
    assert.equal(twin.status, 200);
    const etag = (twin.json() as { etag: string }).etag;
    const stale = await call("PATCH", "/twins/dev-t", {
      token,
      body: JSON.stringify({ properties: { desired: { interval: 5 } } }),
      headers: { "If-Match": '"stale"' },
    });
    assert.equal(stale.status, 412);
    const patched = await call("PATCH", "/twins/dev-t", {
      token,
      body: JSON.stringify({ tags: { room: 7 }, properties: { desired: { interval: 5 } } }),
      headers: { "If-Match": `"${etag}"` },
    });
    assert.equal(patched.status, 200, patched.text);
    const body = patched.json() as {
      tags: { room: number };
      properties: { desired: { interval: number; $version: number } };
      authenticationType: string;
    };
    assert.equal(body.properties.desired.interval, 5);
    assert.equal(body.properties.desired.$version, 2);
    assert.equal(body.tags.room, 7);
    assert.equal(body.authenticationType, "certificateAuthority");
    const reported = await call("PATCH", "/twins/dev-t", {
      token,
      body: JSON.stringify({ properties: { reported: { x: 1 } } }),
    });
    assert.equal(reported.status, 400);
  });

  it("invokes a direct method on an online device and reports an offline one as 404", async () => {
    const token = await hubToken();
    hub.upsertDevice({
      hubHostName: HUB,
      deviceId: "dev-m",
      status: "enabled",
      authentication: { type: "certificateAuthority" },
    });
    const offline = await call("POST", "/twins/dev-m/methods?api-version=2021-04-12", {
      token,
      body: JSON.stringify({ methodName: "reboot", payload: { delay: 1 }, responseTimeoutInSeconds: 10 }),
    });
    assert.equal(offline.status, 404);
    assert.match((offline.json() as { Message: string }).Message, /^ErrorCode:DeviceNotOnline;/);
    hub.online.add("dev-m");
    const online = await call("POST", "/twins/dev-m/methods", {
      token,
      body: JSON.stringify({ methodName: "reboot", payload: { delay: 1 }, responseTimeoutInSeconds: 10 }),
    });
    assert.equal(online.status, 200, online.text);
    assert.deepEqual(online.json(), { status: 200, payload: { echo: { delay: 1 }, method: "reboot" } });
    const badTimeout = await call("POST", "/twins/dev-m/methods", {
      token,
      body: JSON.stringify({ methodName: "reboot", responseTimeoutInSeconds: 1000 }),
    });
    assert.equal(badTimeout.status, 400);
  });

  it("sends a cloud-to-device message with its properties", async () => {
    const reply = await call("POST", "/emulator/devices/dev-m/messages/devicebound", {
      token: await hubToken(),
      body: "hello",
      headers: {
        "Content-Type": "text/plain",
        "iothub-messageid": "m-1",
        "iothub-app-colour": "blue",
        "iothub-contenttype": "application/json",
        "iothub-contentencoding": "utf-8",
        "iothub-ack": "positive",
      },
    });
    assert.equal(reply.status, 204, reply.text);
    const sent = hub.c2d.at(-1);
    assert.equal(sent?.messageId, "m-1");
    assert.deepEqual(sent?.properties, { colour: "blue" });
    assert.equal(sent?.contentType, "application/json");
    assert.equal(sent?.contentEncoding, "utf-8");
    assert.equal(sent?.ack, "positive");
    assert.equal(Buffer.from(sent?.body ?? "").toString(), "hello");
  });

  it("shows recent telemetry as JSON and streams new telemetry as server-sent events", async () => {
    const record = (n: number): TelemetryRecord => ({
      hubHostName: HUB,
      deviceId: "dev-s",
      enqueuedTimeUtc: new Date().toISOString(),
      body: Buffer.from(JSON.stringify({ n })),
      properties: { kind: "test" },
      systemProperties: { contentType: "application/json" },
    });
    hub.telemetry.push(record(1));
    const recent = await call("GET", "/emulator/devices/dev-s/telemetry?limit=10", {
      token: await hubToken(),
    });
    assert.equal(recent.status, 200);
    const items = recent.json() as Array<{
      body: { n: number };
      properties: { kind: string };
      bodyBase64: string;
    }>;
    assert.equal(items.length, 1);
    assert.deepEqual(items[0]?.body, { n: 1 });
    assert.equal(items[0]?.properties.kind, "test");

    const token = await hubToken();
    const event = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          servername: "localhost",
          port: api.port,
          path: "/emulator/devices/dev-s/telemetry/stream",
          ca,
          headers: { Authorization: token },
        },
        (res) => {
          assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
          let text = "";
          res.on("data", (chunk: Buffer) => {
            text += chunk.toString();
            if (text.includes(": stream open")) {
              if (!text.includes("event: telemetry")) {
                hub.emit("telemetry", { ...record(2), deviceId: "someone-else" });
                hub.emit("telemetry", record(2));
              }
            }
            const match = /event: telemetry\ndata: (.*)\n\n/.exec(text);
            if (match?.[1]) {
              req.destroy();
              resolve(match[1]);
            }
          });
          res.on("error", () => undefined);
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.deepEqual((JSON.parse(event) as { body: unknown; deviceId: string }).body, { n: 2 });
    assert.equal((JSON.parse(event) as { deviceId: string }).deviceId, "dev-s");
  });

  it("passes faults to the hub and the DPS", async () => {
    const token = await hubToken();
    hub.online.add("dev-f");
    const drop = await call("POST", "/emulator/faults/hub/drop-connection", {
      token,
      body: JSON.stringify({ deviceId: "dev-f" }),
    });
    assert.deepEqual(drop.json(), { fault: "drop-connection", applied: true });
    await call("POST", "/emulator/faults/hub/detach-link", {
      token,
      body: JSON.stringify({ deviceId: "dev-f", link: "twin" }),
    });
    await call("POST", "/emulator/faults/hub/reject-tokens", { token, body: JSON.stringify({ count: 2 }) });
    await call("POST", "/emulator/faults/hub/throttle", { token, body: JSON.stringify({ count: 3 }) });
    await call("POST", "/emulator/faults/hub/throttle-twin-gets", {
      token,
      body: JSON.stringify({ count: 4 }),
    });
    await call("POST", "/emulator/faults/hub/delay-acks", { token, body: JSON.stringify({ ms: 250 }) });
    assert.deepEqual(hub.faultCalls, [
      "drop dev-f",
      "detach dev-f twin",
      "reject 2",
      "throttle 3",
      "throttle twin gets 4",
      "delay 250",
    ]);
    const badLink = await call("POST", "/emulator/faults/hub/detach-link", {
      token,
      body: JSON.stringify({ deviceId: "dev-f", link: "nope" }),
    });
    assert.equal(badLink.status, 400);
    const unknown = await call("POST", "/emulator/faults/hub/explode", { token, body: "{}" });
    assert.equal(unknown.status, 404);
    const dps = await call("POST", "/emulator/faults/dps/rejectNextRegistrations", {
      token: await dpsToken(),
      body: JSON.stringify({ count: 1 }),
    });
    assert.equal(dps.status, 200, dps.text);
    assert.deepEqual(dpsFaultCalls, [{ count: 1 }]);
  });

  it("answers bad JSON with 400, oversize bodies with 413, unknown paths with 404 and wrong methods with 405", async () => {
    const token = await hubToken();
    const badJson = await call("PATCH", "/twins/dev-t", { token, body: "{not json" });
    assert.equal(badJson.status, 400);
    const notObject = await call("PATCH", "/twins/dev-t", { token, body: "[1,2]" });
    assert.equal(notObject.status, 400);
    const huge = await call("PATCH", "/twins/dev-t", {
      token,
      body: JSON.stringify({ tags: { x: "y".repeat(300 * 1024) } }),
    });
    assert.equal(huge.status, 413);
    const unknown = await call("GET", "/nothing/here", { token });
    assert.equal(unknown.status, 404);
    const wrongMethod = await call("DELETE", "/twins/dev-t", { token });
    assert.equal(wrongMethod.status, 405);
    const badEncoding = await call("GET", "/twins/%E0%A4%A", { token });
    assert.equal(badEncoding.status, 400);
    // The server is still there after all of that.
    assert.equal((await call("GET", "/twins/dev-t", { token })).status, 200);
  });
});
