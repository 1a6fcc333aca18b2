// The DPS service client (the unmodified service SDK behind it) against the emulator's service API: bulk
// operations in Azure's shape with DPS's limit of 10, and a deadline for a service that never answers.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DpsServiceClient, DpsServiceError, type IndividualEnrollment } from "../../src/enrollment/index.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";

const enrollment = (registrationId: string): IndividualEnrollment => ({
  registrationId,
  attestation: { type: "symmetricKey", symmetricKey: {} },
});

describe("DPS service client against the emulator's service API", () => {
  let dir: string;
  let emulator: Emulator;
  let client: DpsServiceClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-dps-service-"));
    emulator = await startEmulator({ dataDir: dir });
    client = new DpsServiceClient({
      connectionString: emulator.connectionStrings.dpsService,
      ca: emulator.caPem,
    });
  });

  after(async () => {
    client?.close();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs a bulk create of 10 and refuses 11 as a whole, as DPS does", async () => {
    const ten = Array.from({ length: 10 }, (_, i) => enrollment(`ten-${i}`));
    assert.deepEqual(await client.bulk("create", ten), { isSuccessful: true, errors: [] });
    assert.equal(
      emulator.dps.store.listIndividualEnrollments().filter((e) => e.registrationId.startsWith("ten-"))
        .length,
      10,
    );

    const eleven = Array.from({ length: 11 }, (_, i) => enrollment(`eleven-${i}`));
    await assert.rejects(
      client.bulk("create", eleven),
      (error: unknown) =>
        error instanceof DpsServiceError &&
        error.status === 400 &&
        /at most 10 enrollments/.test(error.message),
    );
    assert.equal(
      emulator.dps.store.getIndividualEnrollment("eleven-0"),
      undefined,
      "nothing of it was stored",
    );
  });

  it("reports per item what a bulk create refused: an existing enrollment and a bad id", async () => {
    const answer = await client.bulk("create", [
      enrollment("ten-0"),
      enrollment("fresh-1"),
      enrollment("bad id"),
    ]);
    assert.equal(answer.isSuccessful, false);
    assert.deepEqual(
      answer.errors.map((e) => [e.registrationId, Math.floor(e.errorCode / 1000)]),
      [
        ["ten-0", 409],
        ["bad id", 400],
      ],
    );
    assert.ok(emulator.dps.store.getIndividualEnrollment("fresh-1"));
  });
});

describe("DPS service client deadline", () => {
  let silent: Server;
  const sockets = new Set<Socket>();

  before(async () => {
    // accepts connections and never answers (not even the TLS handshake)
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.resume(); // read (and drop) what comes, so that the client's close is seen
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it("gives up after the timeout with a clear error, and closes the hanging connection", async () => {
    const address = silent.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const key = Buffer.alloc(32, 4).toString("base64");
    const client = new DpsServiceClient({
      connectionString: `HostName=dps.example.net;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=${key}`,
      endpoint: `127.0.0.1:${port}`,
      timeoutMs: 500,
    });
    try {
      await assert.rejects(
        client.get("anything"),
        (error: unknown) =>
          error instanceof DpsServiceError &&
          error.kind === "timeout" &&
          /no answer from DPS service 127\.0\.0\.1:\d+ within 0\.5 s/.test(error.message) &&
          !error.message.includes(key),
      );
      const deadline = Date.now() + 5_000;
      while ([...sockets].some((s) => !s.destroyed) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(
        [...sockets].every((s) => s.destroyed),
        "the hanging connection was dropped",
      );
    } finally {
      client.close();
    }
  });
});
