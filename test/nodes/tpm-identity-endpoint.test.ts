// The editor's "Read TPM identity" button: the admin endpoint reads registration id and EK from the TPM.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
      .send({ kind: "mssim", host: "127.0.0.1", port: await closedPort() })
      .expect(502);
    assert.match((unreachable.body as { message: string }).message, /nothing listens/);
  });

  it("opens nothing but a TPM device: a regular file is refused untouched, a missing TPM is named", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tpm-endpoint-"));
    const file = join(dir, "precious.txt");
    await writeFile(file, "do not overwrite me");
    const before = await stat(file);
    try {
      for (const devicePath of [file, "/dev/null", "/dev/tpm0/../../etc/passwd", "/etc/passwd"]) {
        const refused = await helper
          .request()
          .post("/provisio-azure-tpm/identity")
          .send({ kind: "device", devicePath })
          .expect(400);
        assert.match((refused.body as { message: string }).message, /must be a TPM device/, devicePath);
      }
      assert.equal(await readFile(file, "utf8"), "do not overwrite me");
      assert.equal((await stat(file)).mtimeMs, before.mtimeMs);
      const missing = await helper
        .request()
        .post("/provisio-azure-tpm/identity")
        .send({ kind: "device", devicePath: "/dev/tpmrm97" })
        .expect(400);
      assert.match((missing.body as { message: string }).message, /no TPM at \/dev\/tpmrm97/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("resolves ${VAR} fields but never sends a variable's value back", async () => {
    const secret = "secret-host-value-93a1";
    process.env.PROVISIO_TEST_TPM_HOST = secret;
    try {
      const answer = await helper
        .request()
        .post("/provisio-azure-tpm/identity")
        .send({ kind: "mssim", host: "${PROVISIO_TEST_TPM_HOST}", port: 1 });
      assert.ok(answer.status >= 400, String(answer.status));
      assert.ok(!JSON.stringify(answer.body).includes(secret), JSON.stringify(answer.body));
      const unset = await helper
        .request()
        .post("/provisio-azure-tpm/identity")
        .send({ kind: "swtpm", port: "${PROVISIO_TEST_UNSET_PORT}", ctrlPort: 2 })
        .expect(400);
      assert.equal(
        (unset.body as { message: string }).message,
        "environment variable PROVISIO_TEST_UNSET_PORT is not set",
      );
    } finally {
      delete process.env.PROVISIO_TEST_TPM_HOST;
    }
  });
});

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
