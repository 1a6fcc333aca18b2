// The editor's "Read TPM identity" button: the admin endpoint reads registration id and EK from the TPM.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { helper, loadFlow, startServer, stopServer } from "../support/node-red.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

describe("TPM identity admin endpoint", () => {
  let tpm: TestTpm;

  before(async () => {
    tpm = await startTestTpm();
    await startServer();
    await loadFlow([
      { id: "tpm1", type: "provisio-azure-tpm", kind: "swtpm", host: "127.0.0.1", port: 1, ctrlPort: 2 },
    ]);
  });

  after(async () => {
    await stopServer();
    await tpm?.dispose();
  });

  it("returns the registration id and EK of the TPM under test, with an enrollment command", async () => {
    const response = await helper
      .request()
      .post("/provisio-azure-tpm/identity")
      .send({
        kind: "swtpm",
        host: "127.0.0.1",
        port: tpm.connection.port,
        ctrlPort: tpm.connection.ctrlPort,
      })
      .expect(200);
    const identity = response.body as {
      registrationId: string;
      endorsementKey: string;
      enrollmentCommand: string;
    };
    const client = new TpmSecurityClient(tpm.connection);
    try {
      assert.equal(identity.registrationId, await client.getRegistrationId());
      assert.equal(identity.endorsementKey, (await client.getEndorsementKey()).toString("base64"));
    } finally {
      await client.close();
    }
    assert.ok(identity.enrollmentCommand.includes(`--enrollment-id ${identity.registrationId}`));
    assert.ok(identity.enrollmentCommand.includes("--attestation-type tpm"));
  });

  it("answers 400 for a malformed request or an unset variable, 502 when the TPM cannot be reached", async () => {
    const bad = await helper
      .request()
      .post("/provisio-azure-tpm/identity")
      .send({ kind: "swtpm", port: "many" })
      .expect(400);
    assert.match((bad.body as { message: string }).message, /port/);
    const unset = await helper
      .request()
      .post("/provisio-azure-tpm/identity")
      .send({ kind: "swtpm", host: "127.0.0.1", port: "${PROVISIO_TEST_UNSET_PORT}", ctrlPort: 2322 })
      .expect(400);
    assert.equal(
      (unset.body as { message: string }).message,
      "environment variable PROVISIO_TEST_UNSET_PORT is not set",
    );
    const unreachable = await helper
      .request()
      .post("/provisio-azure-tpm/identity")
      .send({ kind: "device", devicePath: "/dev/no-such-tpm" })
      .expect(502);
    assert.match((unreachable.body as { message: string }).message, /no such device/);
  });
});
