import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, stat, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CA_KEY_FILE,
  SERVER_KEY_FILE,
  ensureCertificates,
  hostWithoutPort,
  serverSubjectAltNames,
} from "../../src/emulator/certs.js";

describe("emulator certificates", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const newDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "provisio-certs-"));
    dirs.push(dir);
    return dir;
  };

  it("strips ports from host names for the SANs", () => {
    assert.equal(hostWithoutPort("localhost:5671"), "localhost");
    assert.equal(hostWithoutPort("[::1]:443"), "::1");
    assert.equal(hostWithoutPort("::1"), "::1");
    assert.equal(hostWithoutPort("hub.example"), "hub.example");
    assert.deepEqual(serverSubjectAltNames(["Hub.Example:5671", "127.0.0.2"]), [
      "127.0.0.1",
      "127.0.0.2",
      "hub.example",
      "localhost",
    ]);
  });

  it("creates a CA and a server certificate it signed, with the wanted SANs and owner-only keys", async () => {
    const dir = await newDir();
    const certs = await ensureCertificates({ dataDir: dir, hostNames: ["hub-1.example:5671", "127.0.0.9"] });
    assert.equal(certs.createdCa, true);
    const ca = new X509Certificate(certs.caCertPem);
    const server = new X509Certificate(certs.serverCertPem);
    assert.equal(ca.ca, true);
    assert.equal(server.ca, false);
    assert.ok(server.verify(ca.publicKey), "server certificate is signed by the CA");
    assert.ok(server.checkIssued(ca));
    assert.ok(server.checkHost("localhost"));
    assert.ok(server.checkHost("hub-1.example"));
    assert.ok(server.checkIP("127.0.0.1"));
    assert.ok(server.checkIP("127.0.0.9"));
    assert.equal(server.checkHost("other.example"), undefined);
    for (const file of [CA_KEY_FILE, SERVER_KEY_FILE]) {
      assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600, file);
    }
    assert.equal(await readFile(certs.caCertFile, "utf8"), certs.caCertPem);
  });

  it("reuses the CA and server certificate on the next start, and re-issues only for a new name", async () => {
    const dir = await newDir();
    const first = await ensureCertificates({ dataDir: dir, hostNames: ["hub-a.example"] });
    const second = await ensureCertificates({ dataDir: dir, hostNames: ["hub-a.example"] });
    assert.equal(second.createdCa, false);
    assert.equal(second.issuedServerCertificate, false);
    assert.equal(second.caCertPem, first.caCertPem);
    assert.equal(second.serverCertPem, first.serverCertPem);
    const third = await ensureCertificates({ dataDir: dir, hostNames: ["hub-b.example"] });
    assert.equal(third.caCertPem, first.caCertPem);
    assert.equal(third.issuedServerCertificate, true);
    const server = new X509Certificate(third.serverCertPem);
    assert.ok(server.checkHost("hub-b.example"));
    assert.ok(server.checkHost("hub-a.example"), "names of the previous certificate are kept");
  });
});
