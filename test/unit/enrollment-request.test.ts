// msg.payload -> DPS individual enrollment, the etag rule and bulk batching (pure logic; DPS itself is
// exercised in test/nodes/dps-enrollment.test.ts against the emulator).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  batchSizeOf,
  enrollmentOf,
  operationOf,
  parseServiceConnection,
  runOperation,
  splitHostPort,
  type BulkMode,
  type DpsEnrollmentService,
  type IndividualEnrollment,
} from "../../src/enrollment/index.js";
import { batchesOf } from "../../src/enrollment/bulk-batches.js";

const EK = Buffer.alloc(64, 7).toString("base64");
const KEY = Buffer.alloc(32, 3).toString("base64");

describe("enrollment from msg.payload", () => {
  it("builds DPS's shape from the short form", () => {
    const enrollment = enrollmentOf({
      registrationId: "board-1",
      endorsementKey: EK,
      deviceId: "gw-1",
      tags: { customer: "ACME" },
      desired: { interval: 5 },
      iotEdge: true,
      provisioningStatus: "disabled",
      allocationPolicy: "static",
      iotHubs: ["hub-a.azure-devices.net"],
      reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: false },
    });
    assert.deepEqual(enrollment, {
      registrationId: "board-1",
      attestation: { type: "tpm", tpm: { endorsementKey: EK } },
      deviceId: "gw-1",
      iotHubs: ["hub-a.azure-devices.net"],
      initialTwin: { tags: { customer: "ACME" }, properties: { desired: { interval: 5 } } },
      provisioningStatus: "disabled",
      allocationPolicy: "static",
      reprovisionPolicy: { updateHubAssignment: true, migrateDeviceData: false },
      capabilities: { iotEdge: true },
    });
  });

  it("takes symmetric keys (or lets DPS make them) and X.509 certificates", () => {
    assert.deepEqual(enrollmentOf({ registrationId: "a", symmetricKey: true }).attestation, {
      type: "symmetricKey",
      symmetricKey: {},
    });
    assert.deepEqual(enrollmentOf({ registrationId: "a", symmetricKey: { primaryKey: KEY } }).attestation, {
      type: "symmetricKey",
      symmetricKey: { primaryKey: KEY },
    });
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    assert.deepEqual(enrollmentOf({ registrationId: "a", certificate: pem }).attestation, {
      type: "x509",
      x509: { clientCertificates: { primary: { certificate: pem } } },
    });
  });

  it("names what is wrong, and never repeats a key", () => {
    assert.throws(() => enrollmentOf({ endorsementKey: EK }), /registrationId is missing/);
    assert.throws(() => enrollmentOf({ registrationId: "a" }), /no attestation/);
    assert.throws(
      () => enrollmentOf({ registrationId: "a", endorsementKey: EK, secondaryCertificate: "x" }),
      /secondaryCertificate belongs to an X.509 attestation/,
    );
    assert.throws(
      () => enrollmentOf({ registrationId: "a", endorsementKey: EK, symmetricKey: true }),
      /only one attestation/,
    );
    assert.throws(
      () => enrollmentOf({ registrationId: "a", endorsementKey: EK, desiredProps: {} }),
      /unknown field desiredProps/,
    );
    assert.throws(
      () => enrollmentOf({ registrationId: "a", endorsementKey: EK, allocationPolicy: "random" }),
      /must be one of/,
    );
    const secret = "not base64 but secret!";
    assert.throws(
      () => enrollmentOf({ registrationId: "a", symmetricKey: { primaryKey: secret } }),
      (error: Error) => /base64/.test(error.message) && !error.message.includes(secret),
    );
  });

  it("maps msg.topic to an operation", () => {
    assert.equal(operationOf(undefined), "enroll");
    assert.equal(operationOf(" GET "), "get");
    assert.throws(() => operationOf("list"), /use enroll, get, delete, query/);
  });
});

describe("DPS service connection", () => {
  const cs = `HostName=my-dps.azure-devices-provisioning.net;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=${KEY}`;

  it("connects to the host name unless an endpoint is given", () => {
    const plain = parseServiceConnection(cs);
    assert.equal(plain.connectHost, "my-dps.azure-devices-provisioning.net");
    assert.equal(plain.connectPort, 443);
    const local = parseServiceConnection(cs, "127.0.0.1:8443");
    assert.deepEqual([local.connectHost, local.connectPort], ["127.0.0.1", 8443]);
    assert.deepEqual(splitHostPort("https://[::1]:9443/"), { host: "::1", port: 9443 });
  });

  it("names the missing part, never the key", () => {
    assert.throws(() => parseServiceConnection("HostName=x;SharedAccessKeyName=p"), /lacks SharedAccessKey/);
    const bad = "HostName=x;SharedAccessKeyName=p;SharedAccessKey=sec ret";
    assert.throws(
      () => parseServiceConnection(bad),
      (error: Error) => !error.message.includes("sec ret"),
    );
    assert.ok(!parseServiceConnection(cs).description.includes(KEY));
  });

  it("bounds the bulk batch size by DPS's limit of 10", () => {
    assert.equal(batchSizeOf(undefined), 10);
    assert.equal(batchSizeOf("4"), 4);
    assert.throws(() => batchSizeOf(11), /from 1 to 10/);
    assert.deepEqual(
      batchesOf([1, 2, 3, 4, 5], 2).map((b) => b.length),
      [2, 2, 1],
    );
  });
});

/** An in-memory stand-in for DPS's enrollment calls (the real service is tested against the emulator). */
class FakeService implements DpsEnrollmentService {
  readonly description = "fake";
  readonly store = new Map<string, IndividualEnrollment>();
  readonly calls: Array<{ mode?: BulkMode; count: number }> = [];
  private version = 0;

  get(id: string): Promise<IndividualEnrollment> {
    const found = this.store.get(id);
    return found ? Promise.resolve(found) : Promise.reject(new Error("not found"));
  }
  createOrUpdate(enrollment: IndividualEnrollment): Promise<IndividualEnrollment> {
    const existing = this.store.get(enrollment.registrationId);
    if (enrollment.etag && existing?.etag !== enrollment.etag) return Promise.reject(new Error("412"));
    const stored = { ...enrollment, etag: `"${++this.version}"` };
    this.store.set(enrollment.registrationId, stored);
    return Promise.resolve(stored);
  }
  delete(id: string): Promise<void> {
    this.store.delete(id);
    return Promise.resolve();
  }
  bulk(mode: BulkMode, enrollments: IndividualEnrollment[]) {
    this.calls.push({ mode, count: enrollments.length });
    const errors: Array<{ registrationId: string; errorCode: number; errorStatus: string }> = [];
    for (const e of enrollments) {
      const exists = this.store.has(e.registrationId);
      if (mode === "create" && exists)
        errors.push({ registrationId: e.registrationId, errorCode: 409201, errorStatus: "exists" });
      else if (e.registrationId.includes(" "))
        errors.push({
          registrationId: e.registrationId,
          errorCode: 400006,
          errorStatus: "invalid registrationId",
        });
      else this.store.set(e.registrationId, { ...e, etag: `"${++this.version}"` });
    }
    return Promise.resolve({ isSuccessful: errors.length === 0, errors });
  }
  query() {
    return Promise.resolve({ items: [...this.store.values()] });
  }
}

describe("enroll operations (etag rule, bulk)", () => {
  it("creates once; a second enroll without etag is refused; with the etag or force it updates", async () => {
    const service = new FakeService();
    const payload = { registrationId: "b-1", endorsementKey: EK };
    const created = await runOperation(service, { operation: "enroll", payload, batchSize: 10 });
    assert.equal(created.dps.action, "created");
    await assert.rejects(
      runOperation(service, { operation: "enroll", payload, batchSize: 10 }),
      /exists already.*etag.*msg\.force/,
    );
    const etag = (created.payload as IndividualEnrollment).etag;
    const updated = await runOperation(service, {
      operation: "enroll",
      payload: { ...payload, etag, tags: { a: 1 } },
      batchSize: 10,
    });
    assert.equal(updated.dps.action, "updated");
    const forced = await runOperation(service, { operation: "enroll", payload, force: true, batchSize: 10 });
    assert.equal(forced.dps.action, "written");
  });

  it("sends an array in batches, reports failed items by position and the rest as created", async () => {
    const service = new FakeService();
    const items: unknown[] = Array.from({ length: 23 }, (_, i) => ({
      registrationId: `b-${i}`,
      endorsementKey: EK,
    }));
    items[5] = { registrationId: "bad id", endorsementKey: EK };
    items[17] = { registrationId: "b-17" }; // no attestation: refused before sending
    const outcome = await runOperation(service, { operation: "enroll", payload: items, batchSize: 10 });
    const report = outcome.payload as {
      succeeded: string[];
      failed: Array<{ index: number; errorCode: number }>;
    };
    assert.deepEqual(
      report.failed.map((f) => [f.index, f.errorCode]),
      [
        [5, 400006],
        [17, 0],
      ],
    );
    assert.equal(report.succeeded.length, 21);
    assert.deepEqual(
      service.calls.map((c) => c.count),
      [10, 10, 2],
    );
    assert.match(String(outcome.partialFailure?.message), /2 of 23 enrollment\(s\) failed: #5 bad id/);
  });

  it("with force, enrollments that exist are updated instead of refused", async () => {
    const service = new FakeService();
    await runOperation(service, {
      operation: "enroll",
      payload: { registrationId: "b-1", endorsementKey: EK },
      batchSize: 10,
    });
    const outcome = await runOperation(service, {
      operation: "enroll",
      payload: [
        { registrationId: "b-1", endorsementKey: EK, tags: { again: true } },
        { registrationId: "b-2", endorsementKey: EK },
      ],
      force: true,
      batchSize: 10,
    });
    assert.equal(outcome.partialFailure, undefined);
    assert.deepEqual(
      service.calls.map((c) => c.mode),
      ["create", "create", "update"],
    );
    assert.deepEqual(service.store.get("b-1")?.initialTwin, { tags: { again: true } });
  });
});
