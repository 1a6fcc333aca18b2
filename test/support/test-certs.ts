// Test-only PKI made in memory with node-forge: a root CA, a server certificate for localhost/127.0.0.1,
// and client certificates for X.509 devices. Keys come from node:crypto (forge's RSA keygen is slow).
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";

export interface IssuedCertificate {
  cert: string;
  key: string;
  /** SHA-1 of the DER certificate, upper-case hex (what IoT Hub calls the thumbprint). */
  thumbprint: string;
  /** SHA-256 thumbprint, upper-case hex. */
  thumbprintSha256: string;
}

export interface TestPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate with CN = commonName, signed by the CA (or self-signed on request). */
  issueClientCert(commonName: string, options?: { selfSigned?: boolean }): IssuedCertificate;
  /** A server certificate for an IP address of its own (tests that need port 443 on another loopback address). */
  issueServerCertForIp(ip: string): { cert: string; key: string };
}

function newKeyPair(): {
  privateKeyPem: string;
  publicKey: forge.pki.PublicKey;
  privateKey: forge.pki.rsa.PrivateKey;
} {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(privateKeyPem);
  return {
    privateKeyPem,
    privateKey: forgeKey,
    publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e),
  };
}

function baseCertificate(publicKey: forge.pki.PublicKey, commonName: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive serial: a leading 0x01 byte keeps the DER integer non-negative.
  cert.serialNumber = "01" + randomBytes(15).toString("hex");
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 60 * 60 * 1000);
  cert.setSubject([{ name: "commonName", value: commonName }]);
  return cert;
}

function thumbprints(cert: forge.pki.Certificate): { thumbprint: string; thumbprintSha256: string } {
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), "binary");
  return {
    thumbprint: createHash("sha1").update(der).digest("hex").toUpperCase(),
    thumbprintSha256: createHash("sha256").update(der).digest("hex").toUpperCase(),
  };
}

export function createTestPki(): TestPki {
  const caKeys = newKeyPair();
  const ca = baseCertificate(caKeys.publicKey, "Provisio Test Root CA");
  ca.setIssuer(ca.subject.attributes);
  ca.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const serverKeys = newKeyPair();
  const server = baseCertificate(serverKeys.publicKey, "localhost");
  server.setIssuer(ca.subject.attributes);
  server.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", serverAuth: true },
    // Node checks the SAN, not the CN.
    {
      name: "subjectAltName",
      altNames: [
        { type: 2, value: "localhost" },
        { type: 7, ip: "127.0.0.1" },
      ],
    },
  ]);
  server.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caCert: forge.pki.certificateToPem(ca),
    caKey: caKeys.privateKeyPem,
    serverCert: forge.pki.certificateToPem(server),
    serverKey: serverKeys.privateKeyPem,
    issueClientCert(commonName, options = {}) {
      const keys = newKeyPair();
      const cert = baseCertificate(keys.publicKey, commonName);
      cert.setIssuer(options.selfSigned ? cert.subject.attributes : ca.subject.attributes);
      cert.setExtensions([
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
        { name: "extKeyUsage", clientAuth: true },
      ]);
      cert.sign(options.selfSigned ? keys.privateKey : caKeys.privateKey, forge.md.sha256.create());
      return { cert: forge.pki.certificateToPem(cert), key: keys.privateKeyPem, ...thumbprints(cert) };
    },
    issueServerCertForIp(ip) {
      const keys = newKeyPair();
      const cert = baseCertificate(keys.publicKey, ip);
      cert.setIssuer(ca.subject.attributes);
      cert.setExtensions([
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
        { name: "extKeyUsage", serverAuth: true },
        { name: "subjectAltName", altNames: [{ type: 7, ip }] },
      ]);
      cert.sign(caKeys.privateKey, forge.md.sha256.create());
      return { cert: forge.pki.certificateToPem(cert), key: keys.privateKeyPem };
    },
  };
}
