import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DpsError, EnrollmentStore, EnrollmentStoreLoadError } from "../../src/emulator/dps/index.js";
import { createTestPki } from "../support/test-certs.js";

const KEY = Buffer.alloc(32, 1).toString("base64");

describe("DPS enrollment store", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-dps-store-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps enrollments, groups and registration states across a reload from its file", async () => {
    const file = join(dir, "state", "dps.json");
    const store = new EnrollmentStore({ file });
    const stored = store.putIndividualEnrollment({
      registrationId: "Device-1",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: KEY } },
      initialTwin: { tags: { a: 1 } },
    });
    store.putEnrollmentGroup({
      enrollmentGroupId: "grp",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: KEY } },
    });
    store.putRegistrationState({
      registrationId: "device-1",
      status: "assigned",
      assignedHub: "h",
      deviceId: "Device-1",
    });
    store.putRegistrationState(
      { registrationId: "member-1", status: "assigned", assignedHub: "h", deviceId: "member-1" },
      "grp",
    );

    const reloaded = new EnrollmentStore({ file });
    const enrollment = reloaded.getIndividualEnrollment("DEVICE-1"); // registration ids are case-insensitive
    assert.equal(enrollment?.registrationId, "Device-1");
    assert.equal(enrollment?.etag, stored.etag);
    assert.equal(enrollment?.provisioningStatus, "enabled");
    assert.deepEqual(enrollment?.initialTwin, { tags: { a: 1 } });
    assert.equal(enrollment?.registrationState?.assignedHub, "h");
    assert.equal(reloaded.getEnrollmentGroup("grp")?.attestation.symmetricKey?.primaryKey, KEY);
    assert.deepEqual(
      reloaded.listRegistrationStates("grp").map((r) => r.registrationId),
      ["member-1"],
    );
    assert.equal(reloaded.getRegistrationGroupId("member-1"), "grp");
    assert.equal((await stat(file)).mode & 0o777, 0o600, "the file holds keys: owner only");
    assert.deepEqual((await readFile(file, "utf8")).includes(".tmp"), false);
  });

  it("generates symmetric keys when none are given and validates what DPS validates", () => {
    const store = new EnrollmentStore();
    const generated = store.putIndividualEnrollment({
      registrationId: "auto",
      attestation: { type: "symmetricKey" },
    });
    assert.equal(Buffer.from(generated.attestation.symmetricKey!.primaryKey, "base64").length, 64);
    assert.notEqual(
      generated.attestation.symmetricKey!.primaryKey,
      generated.attestation.symmetricKey!.secondaryKey,
    );

    const invalid = (f: () => unknown) =>
      assert.throws(f, (e: unknown) => e instanceof DpsError && e.status === 400);
    invalid(() =>
      store.putIndividualEnrollment({ registrationId: "-bad", attestation: { type: "symmetricKey" } }),
    );
    invalid(() =>
      store.putIndividualEnrollment({
        registrationId: "x".repeat(129),
        attestation: { type: "symmetricKey" },
      }),
    );
    invalid(() =>
      store.putIndividualEnrollment({
        registrationId: "tpm",
        attestation: { type: "tpm", tpm: { endorsementKey: "AAAA" } },
      }),
    );
    invalid(() =>
      store.putIndividualEnrollment({ registrationId: "x509", attestation: { type: "x509", x509: {} } }),
    );
    invalid(() =>
      store.putIndividualEnrollment({
        registrationId: "custom",
        allocationPolicy: "custom",
        attestation: { type: "symmetricKey" },
      }),
    );
    invalid(() =>
      store.putEnrollmentGroup({
        enrollmentGroupId: "g",
        attestation: { type: "symmetricKey", symmetricKey: { primaryKey: "c2hvcnQ=" } },
      }),
    );
  });

  it("fills in X.509 certificate info as the service does and refuses unsupported CA references", () => {
    const pki = createTestPki();
    const store = new EnrollmentStore();
    const device = pki.issueClientCert("x509-info", { selfSigned: true });
    const stored = store.putIndividualEnrollment({
      registrationId: "x509-info",
      attestation: { type: "x509", x509: { clientCertificates: { primary: { certificate: device.cert } } } },
    });
    const info = stored.attestation.x509?.clientCertificates?.primary?.info;
    assert.equal(info?.sha1Thumbprint, device.thumbprint);
    assert.equal(info?.sha256Thumbprint, device.thumbprintSha256);
    assert.equal(info?.subjectName, "CN=x509-info");
    assert.throws(
      () =>
        store.putEnrollmentGroup({
          enrollmentGroupId: "by-reference",
          attestation: { type: "x509", x509: { caReferences: { primary: "my-root" } } },
        }),
      (e: unknown) => e instanceof DpsError && e.status === 400,
    );
  });

  it("honours If-Match etags on replace and delete", () => {
    const store = new EnrollmentStore();
    const first = store.putIndividualEnrollment({
      registrationId: "etag",
      attestation: { type: "symmetricKey" },
    });
    const second = store.putIndividualEnrollment({ ...first, provisioningStatus: "disabled" }, first.etag);
    assert.notEqual(second.etag, first.etag);
    assert.equal(second.createdDateTimeUtc, first.createdDateTimeUtc);
    assert.throws(
      () => store.putIndividualEnrollment(first, first.etag),
      (e: unknown) => e instanceof DpsError && e.status === 412,
    );
    assert.throws(
      () => store.deleteIndividualEnrollment("etag", first.etag),
      (e: unknown) => e instanceof DpsError && e.status === 412,
    );
    assert.equal(store.deleteIndividualEnrollment("etag", second.etag), true);
    assert.equal(store.deleteIndividualEnrollment("etag"), false);
  });

  it("refuses to start on a corrupt file instead of silently dropping enrollments", async () => {
    const file = join(dir, "corrupt.json");
    await writeFile(file, "{ half a file");
    assert.throws(() => new EnrollmentStore({ file }), EnrollmentStoreLoadError);
  });
});
