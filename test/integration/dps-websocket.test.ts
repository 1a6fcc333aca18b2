// The WebSocket transports (AmqpWs, MqttWs) of the unmodified SDK always connect to port 443, so this test
// runs the emulator's HTTPS listener on 443 of a loopback address of its own, with a certificate for it.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import forge from "node-forge";
import { TpmSecurityClient } from "../../src/tpm/security-client.js";
import { startTestTpm } from "../support/swtpm.js";
import {
  isRefusal,
  register,
  sdkWebSocketEndpoint,
  startTestDps,
  symmetricKeyDevice,
  symmetricKeyEnrollment,
  testPki,
  x509Device,
  type TestDps,
} from "./dps-fixtures.js";

const HOST = "127.0.0.78";
const WEB_SOCKET_TRANSPORTS = ["amqp-ws", "mqtt-ws"] as const;

describe("DPS emulator, AMQP and MQTT over WebSockets on port 443", () => {
  let env: TestDps | undefined;
  let skipReason: string | undefined;

  before(async () => {
    const pki = testPki();
    try {
      env = await startTestDps({
        dps: { host: HOST, httpsPort: 443, tls: { ...serverCertificateFor(HOST, pki.caCert, pki.caKey) } },
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EADDRINUSE" && code !== "EADDRNOTAVAIL") throw error;
      skipReason = `cannot listen on ${HOST}:443 here (${code})`;
    }
  });
  after(async () => {
    await env?.dispose();
  });

  for (const transport of WEB_SOCKET_TRANSPORTS) {
    it(`provisions symmetric key and X.509 devices over ${transport}`, async (t) => {
      if (!env) return t.skip(skipReason);
      const key = randomBytes(32).toString("base64");
      const registrationId = `ws-sk-${transport}`;
      env.store.putIndividualEnrollment(symmetricKeyEnrollment(registrationId, key));
      const ca = env.pki.caCert;
      const sk = await register(
        sdkWebSocketEndpoint(HOST, ca, transport),
        symmetricKeyDevice(registrationId, key),
      );
      assert.equal(sk.status, "assigned");
      assert.ok(env.hub.getDevice("hub-1.emulator.local", registrationId));

      const x509Id = `ws-x509-${transport}`;
      const device = env.pki.issueClientCert(x509Id, { selfSigned: true });
      env.store.putIndividualEnrollment({
        registrationId: x509Id,
        attestation: {
          type: "x509",
          x509: { clientCertificates: { primary: { certificate: device.cert } } },
        },
      });
      const x509 = await register(
        sdkWebSocketEndpoint(HOST, ca, transport),
        x509Device(x509Id, device, transport, ca),
      );
      assert.equal(x509.status, "assigned");

      await assert.rejects(
        register(
          sdkWebSocketEndpoint(HOST, ca, transport),
          symmetricKeyDevice(registrationId, randomBytes(32).toString("base64")),
        ),
        isRefusal,
      );
    });
  }

  it("provisions a TPM (swtpm) over amqp-ws: SASL TPM inside the WebSocket", async (t) => {
    if (!env) return t.skip(skipReason);
    const swtpm = await startTestTpm();
    const tpm = new TpmSecurityClient(swtpm.connection);
    try {
      const registrationId = await tpm.getRegistrationId();
      const endorsementKey = (await tpm.getEndorsementKey()).toString("base64");
      env.store.putIndividualEnrollment({
        registrationId,
        attestation: { type: "tpm", tpm: { endorsementKey } },
      });
      const result = await register(sdkWebSocketEndpoint(HOST, env.pki.caCert, "amqp-ws"), tpm);
      assert.equal(result.status, "assigned");
      assert.equal(env.hub.getDevice("hub-1.emulator.local", registrationId)?.authentication.type, "sas");
    } finally {
      await tpm.close();
      await swtpm.dispose();
    }
  });

  it("refuses other upgrade paths and protocols, and drops a connection sending unmasked frames", async (t) => {
    if (!env) return t.skip(skipReason);
    const ca = env.pki.caCert;
    assert.match(await upgrade(ca, "/other", "AMQPWSB10"), /^HTTP\/1\.1 404/);
    assert.match(await upgrade(ca, "/$iothub/websocket", "chat"), /^HTTP\/1\.1 400/);
    const answer = await upgrade(ca, "/$iothub/websocket", "mqtt", Buffer.from([0x82, 0x02, 0x10, 0x00]));
    assert.match(answer, /^HTTP\/1\.1 101/);
    assert.match(answer, /closed$/);
  });
});

/** Sends an upgrade request (and optionally bytes after it); resolves with what came back, then "closed". */
function upgrade(ca: string, path: string, protocol: string, after?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = tlsConnect({ host: HOST, port: 443, ca, servername: HOST }, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
      );
      if (after) socket.write(after);
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer for ${path}: ${text}`));
    }, 10_000);
    socket.on("data", (data: Buffer) => (text += data.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(`${text}closed`);
    });
  });
}

/** A server certificate for an IP address, issued by the test CA. */
function serverCertificateFor(
  ip: string,
  caCertPem: string,
  caKeyPem: string,
): { key: string; cert: string } {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const caCert = forge.pki.certificateFromPem(caCertPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `01${randomBytes(12).toString("hex")}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  cert.setSubject([{ name: "commonName", value: ip }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "extKeyUsage", serverAuth: true },
    { name: "subjectAltName", altNames: [{ type: 7, ip }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(caKeyPem), forge.md.sha256.create());
  return { key: forge.pki.privateKeyToPem(keys.privateKey), cert: forge.pki.certificateToPem(cert) };
}
