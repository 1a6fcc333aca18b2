import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EnrollmentStore } from "../../src/emulator/dps/enrollment-store.js";
import {
  applyEnrollments,
  EnrollmentsFileError,
  parseEnrollmentsFile,
} from "../../src/emulator/service-api/enrollments-file.js";

const file = JSON.stringify({
  enrollments: [
    { registrationId: "dev-1", attestation: { type: "symmetricKey" }, initialTwin: { tags: { a: 1 } } },
  ],
  enrollmentGroups: [{ enrollmentGroupId: "grp-1", attestation: { type: "symmetricKey" } }],
});

describe("enrollments file", () => {
  it("reads both the object form and a mixed array", () => {
    const fromObject = parseEnrollmentsFile(file);
    assert.deepEqual(
      fromObject.enrollments.map((e) => e.registrationId),
      ["dev-1"],
    );
    assert.deepEqual(
      fromObject.enrollmentGroups.map((g) => g.enrollmentGroupId),
      ["grp-1"],
    );
    const fromArray = parseEnrollmentsFile(
      JSON.stringify([
        { enrollmentGroupId: "g", attestation: { type: "symmetricKey" } },
        { registrationId: "r" },
      ]),
    );
    assert.equal(fromArray.enrollments.length, 1);
    assert.equal(fromArray.enrollmentGroups.length, 1);
  });

  it("rejects files that are not JSON or hold unidentifiable entries", () => {
    assert.throws(() => parseEnrollmentsFile("{"), EnrollmentsFileError);
    assert.throws(() => parseEnrollmentsFile("[{}]"), EnrollmentsFileError);
    assert.throws(() => parseEnrollmentsFile('{"enrollments": 3}'), EnrollmentsFileError);
  });

  it("applies idempotently: the second run changes nothing and generated keys survive", () => {
    const store = new EnrollmentStore();
    const first = applyEnrollments(store, parseEnrollmentsFile(file));
    assert.deepEqual(first.created.sort(), ["enrollment:dev-1", "group:grp-1"]);
    const keyBefore = store.getIndividualEnrollment("dev-1")?.attestation.symmetricKey?.primaryKey;
    const etagBefore = store.getEnrollmentGroup("grp-1")?.etag;
    const second = applyEnrollments(store, parseEnrollmentsFile(file));
    assert.deepEqual(second.created, []);
    assert.deepEqual(second.updated, []);
    assert.equal(second.unchanged.length, 2);
    assert.equal(store.getIndividualEnrollment("dev-1")?.attestation.symmetricKey?.primaryKey, keyBefore);
    assert.equal(store.getEnrollmentGroup("grp-1")?.etag, etagBefore);
  });

  it("updates an entry the file changed, keeping its keys", () => {
    const store = new EnrollmentStore();
    applyEnrollments(store, parseEnrollmentsFile(file));
    const keyBefore = store.getIndividualEnrollment("dev-1")?.attestation.symmetricKey?.primaryKey;
    const changed = JSON.parse(file) as { enrollments: Array<{ provisioningStatus?: string }> };
    changed.enrollments[0].provisioningStatus = "disabled";
    const result = applyEnrollments(store, parseEnrollmentsFile(JSON.stringify(changed)));
    assert.deepEqual(result.updated, ["enrollment:dev-1"]);
    assert.equal(store.getIndividualEnrollment("dev-1")?.provisioningStatus, "disabled");
    assert.equal(store.getIndividualEnrollment("dev-1")?.attestation.symmetricKey?.primaryKey, keyBefore);
  });
});
