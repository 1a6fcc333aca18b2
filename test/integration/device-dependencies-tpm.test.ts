// The real dependencies with a TPM that answers (swtpm): dispose() closes the TPM connection, so that the next
// session can open it, and the configured registration id is the one DPS is sent.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { createServer as createHttpsServer, type Server } from "node:https";
import { createTestPki } from "../support/test-certs.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { sdkDependencies } from "../../src/device/dependencies.js";

describe("sdkDependencies with swtpm", () => {
  const pki = createTestPki();
  let tpm: TestTpm;
  let dps: Server;
  let port = 0;
  const paths: string[] = [];

  before(async () => {
    tpm = await startTestTpm();
    // An HTTPS "DPS" that records the path of each registration and answers 500.
    dps = createHttpsServer({ cert: pki.serverCert, key: pki.serverKey }, (request, response) => {
      paths.push((request.url ?? "").split("?")[0]);
      request.resume();
      request.on("end", () => response.writeHead(500).end('{"message":"test"}'));
    });
    await new Promise<void>((resolve) => dps.listen(0, "127.0.0.1", resolve));
    port = (dps.address() as { port: number }).port;
  });

  after(async () => {
    dps.close();
    await tpm.dispose();
  });

  it(
    "dispose() closes the TPM connection and leaves the TPM to the next client",
    { timeout: 30_000 },
    async () => {
      // The sockets of this process connected to the TPM's command port.
      const sockets = (): number =>
        (process as unknown as { _getActiveHandles(): unknown[] })
          ._getActiveHandles()
          .filter((handle) => handle instanceof Socket && handle.remotePort === tpm.connection.port).length;
      const attestation = { kind: "tpm", connection: tpm.connection } as const;
      const first = sdkDependencies({ dps: { idScope: "0ne00012345" }, attestation });
      const id = await first.registrationId();
      assert.equal(sockets(), 1, "the TPM connection is open while it is used");
      await first.dispose();
      assert.equal(sockets(), 0);
      const second = sdkDependencies({ dps: { idScope: "0ne00012345" }, attestation });
      try {
        assert.equal(await second.registrationId(), id);
      } finally {
        await second.dispose();
      }
    },
  );

  it("registers the configured registration id, not the one the endorsement key gives", async () => {
    const dependencies = sdkDependencies({
      dps: {
        idScope: "0ne00012345",
        globalEndpoint: `localhost:${port}`,
        transport: "https",
        ca: pki.caCert,
      },
      attestation: { kind: "tpm", connection: tpm.connection, registrationId: "gw-1" },
    });
    try {
      await assert.rejects(dependencies.provision(new AbortController().signal));
    } finally {
      await dependencies.dispose();
    }
    assert.ok(paths.length > 0);
    for (const path of paths) assert.equal(path, "/0ne00012345/registrations/gw-1/register");
  });
});
