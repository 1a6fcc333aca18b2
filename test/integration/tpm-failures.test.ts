// The TPM client fails with typed errors and never takes the process down.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startSwtpm } from "../../src/swtpm/launcher.js";
import { buildActivationBlob } from "../../src/emulator/tpm-activation.js";
import { TpmError, TpmSecurityClient } from "../../src/tpm/index.js";
import { startMssimFront } from "../support/mssim-front.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();
const isTpmError =
  (code: string, pattern?: RegExp) =>
  (error: unknown): boolean =>
    error instanceof TpmError && error.code === code && (!pattern || pattern.test(error.message));

function tamper(blob: Buffer, offset: number): Buffer {
  const copy = Buffer.from(blob);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

describe("TPM failures become typed errors", () => {
  let tpm: TestTpm;
  let endorsementKey: Buffer;
  let storageRootKey: Buffer;

  before(async () => {
    tpm = await startTestTpm();
    const client = new TpmSecurityClient(tpm.connection);
    endorsementKey = await client.getEndorsementKey();
    storageRootKey = await client.getStorageRootKey();
    await client.close();
  });

  after(async () => {
    await tpm?.dispose();
  });

  it("refuses a tampered activation blob with the TPM's integrity error", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    try {
      const blob = buildActivationBlob(endorsementKey, storageRootKey, randomBytes(32));
      await assert.rejects(
        client.activateIdentityKey(tamper(blob, 10)),
        isTpmError("TPM_RESPONSE", /TPM_RC_INTEGRITY/),
      );
    } finally {
      await client.close();
    }
  });

  it("survives 10 failed activations in a row, then activates a good blob (no leaked sessions)", async () => {
    const client = new TpmSecurityClient(tpm.connection); // one connection: a leaked session would stay
    try {
      for (let i = 0; i < 10; i++) {
        const blob = buildActivationBlob(endorsementKey, storageRootKey, randomBytes(32));
        // alternate between a broken credential (fails in ActivateCredential, inside the policy session)
        // and a broken duplicate (fails later, in Import)
        const broken = i % 2 === 0 ? tamper(blob, 20) : tamper(blob, 400);
        await assert.rejects(client.activateIdentityKey(broken), isTpmError("TPM_RESPONSE"), `attempt ${i}`);
      }
      const key = randomBytes(32);
      await client.activateIdentityKey(buildActivationBlob(endorsementKey, storageRootKey, key));
      const data = randomBytes(40);
      assert.ok((await client.signWithIdentity(data)).equals(hmac(key, data)));
    } finally {
      await client.close();
    }
  });

  it("refuses a blob made for another TPM's EK", async () => {
    const other = await startTestTpm();
    try {
      const otherClient = new TpmSecurityClient(other.connection);
      const otherEk = await otherClient.getEndorsementKey();
      await otherClient.close();
      const client = new TpmSecurityClient(tpm.connection);
      try {
        const blob = buildActivationBlob(otherEk, storageRootKey, randomBytes(32));
        await assert.rejects(client.activateIdentityKey(blob), isTpmError("TPM_RESPONSE"));
      } finally {
        await client.close();
      }
    } finally {
      await other.dispose();
    }
  });

  it("refuses a malformed blob before touching the TPM", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    try {
      await assert.rejects(
        client.activateIdentityKey(Buffer.from([0, 200, 1, 2])),
        isTpmError("TPM_INVALID_INPUT"),
      );
      await assert.rejects(client.activateIdentityKey(Buffer.alloc(0)), isTpmError("TPM_INVALID_INPUT"));
    } finally {
      await client.close();
    }
  });

  it("reports an unreachable TPM as a transport error", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, "127.0.0.1", () => {
        const address = server.address() as net.AddressInfo;
        server.close(() => resolve(address.port));
      });
    });
    const client = new TpmSecurityClient({
      kind: "swtpm",
      host: "127.0.0.1",
      port: closedPort,
      ctrlPort: closedPort,
    });
    await assert.rejects(client.getEndorsementKey(), isTpmError("TPM_TRANSPORT", /ECONNREFUSED/));
    await client.close();
  });

  it("gives up on a TPM that never answers after the command timeout", async () => {
    const silent = net.createServer((socket) => socket.on("error", () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as net.AddressInfo;
    const client = new TpmSecurityClient(
      { kind: "swtpm", host: "127.0.0.1", port, ctrlPort: port },
      { commandTimeoutMs: 300 },
    );
    try {
      await assert.rejects(client.getEndorsementKey(), isTpmError("TPM_TIMEOUT"));
    } finally {
      await client.close();
      silent.close();
    }
  });

  it("reports a missing TPM device by path", async () => {
    const client = new TpmSecurityClient({ kind: "device", path: "/dev/no-such-tpm" });
    await assert.rejects(
      client.getEndorsementKey(),
      isTpmError("TPM_TRANSPORT", /no-such-tpm: no such device/),
    );
    await client.close();
  });

  it("fails a command in flight when swtpm is killed, and works again once swtpm is back", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "provisio-swtpm-victim-"));
    const victim = await startSwtpm({ stateDir });
    const client = new TpmSecurityClient(victim.connection, { commandTimeoutMs: 10_000 });
    try {
      await client.getEndorsementKey(); // connected, EK created
      const key = randomBytes(32);
      await client.activateIdentityKey(
        buildActivationBlob(await client.getEndorsementKey(), await client.getStorageRootKey(), key),
      );
      process.kill(victim.pid, "SIGSTOP"); // the next command stays in flight...
      const inFlight = client.signWithIdentity(Buffer.from("in flight"));
      await new Promise((resolve) => setTimeout(resolve, 200));
      process.kill(victim.pid, "SIGKILL"); // ...until swtpm dies under it
      await assert.rejects(inFlight, isTpmError("TPM_TRANSPORT"));

      const revived = await startSwtpm({ stateDir, ...victim.connection });
      try {
        const data = Buffer.from("after restart");
        assert.ok(
          (await client.signWithIdentity(data)).equals(hmac(key, data)),
          "persistent identity key survives",
        );
      } finally {
        await client.close();
        await revived.stop();
      }
    } finally {
      await client.close();
      await victim.stop();
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it("fails queued calls with TPM_CLOSED after close()", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    const first = client.getEndorsementKey();
    const closing = client.close();
    const queued = client.getStorageRootKey();
    await first.catch(() => undefined);
    await closing;
    await assert.rejects(queued, isTpmError("TPM_CLOSED"));
  });

  it("lets a second client use a one-client swtpm once the first is idle", async () => {
    const first = new TpmSecurityClient(tpm.connection);
    const second = new TpmSecurityClient(tpm.connection, { commandTimeoutMs: 5000 });
    try {
      assert.ok((await first.getEndorsementKey()).equals(endorsementKey));
      // `first` stays open; without its idle release `second` would wait in swtpm's backlog until it timed out
      assert.ok((await second.getStorageRootKey()).equals(storageRootKey));
      assert.ok((await first.getRegistrationId()).length > 0);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it("talks to a TPM through the Microsoft simulator protocol", async () => {
    const front = await startMssimFront(tpm.connection);
    const client = new TpmSecurityClient({ kind: "mssim", host: front.host, port: front.port });
    try {
      assert.ok((await client.getEndorsementKey()).equals(endorsementKey));
      assert.deepEqual(front.platformSignals.slice(0, 2), [1, 11]); // power on, NV on
    } finally {
      await client.close();
      await front.close();
    }
  });
});
