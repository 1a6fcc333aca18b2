// The DPS emulator's X.509 checks: a chain counts only when each link's signature verifies, not when the
// names line up; the leaf must be valid now and carry the registration id as CN.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import forge from "node-forge";
import {
  certificateInfo,
  chainLeadsTo,
  checkLeaf,
  commonName,
  leafMatchesEnrolled,
  parseCertificate,
  thumbprints,
} from "../../src/emulator/dps/credentials.js";
import { createTestPki } from "../support/test-certs.js";

const pki = createTestPki();
// Another CA with exactly the same subject name ("Provisio Test Root CA"), and so the same issuer name in
// the leaves it signs: only the signature tells them apart.
const rogue = createTestPki();
const x509 = (pem: string) => new X509Certificate(pem);
const ca = x509(pki.caCert);

describe("DPS emulator X.509 chain checks", () => {
  it("the two test CAs have the same name and different keys", () => {
    assert.equal(x509(rogue.caCert).subject, ca.subject);
    assert.notEqual(x509(rogue.caCert).fingerprint256, ca.fingerprint256);
  });

  it("accepts a leaf signed by the enrolled CA", () => {
    assert.equal(chainLeadsTo([x509(pki.issueClientCert("dev-1").cert)], [ca]), true);
  });

  it("refuses a leaf with the same issuer name signed by another CA", () => {
    const leaf = x509(rogue.issueClientCert("dev-1").cert);
    assert.equal(leaf.issuer, ca.subject);
    assert.equal(chainLeadsTo([leaf], [ca]), false);
    // ...also when the device sends its own CA along: that CA is not the enrolled one
    assert.equal(chainLeadsTo([leaf, x509(rogue.caCert)], [ca]), false);
  });

  it("refuses a self-signed leaf and a chain with nothing to anchor it", () => {
    assert.equal(chainLeadsTo([x509(pki.issueClientCert("dev-1", { selfSigned: true }).cert)], [ca]), false);
    assert.equal(chainLeadsTo([x509(pki.issueClientCert("dev-1").cert)], []), false);
    assert.equal(chainLeadsTo([], [ca]), false);
  });

  it("accepts the enrolled CA itself presented as the chain's end, and refuses a chain whose links do not verify", () => {
    const leaf = x509(pki.issueClientCert("dev-1").cert);
    assert.equal(chainLeadsTo([leaf, ca], [ca]), true);
    // the device presents the rogue leaf then the real CA: the leaf-to-CA link does not verify
    assert.equal(chainLeadsTo([x509(rogue.issueClientCert("dev-1").cert), ca], [x509(pki.caCert)]), false);
  });

  it("refuses chains when a certificate is not valid now", () => {
    const leaf = x509(pki.issueClientCert("dev-1").cert);
    const later = new Date(Date.now() + 48 * 60 * 60 * 1000);
    assert.equal(chainLeadsTo([leaf], [ca], later), false);
    const earlier = new Date(Date.now() - 60 * 60 * 1000);
    assert.equal(chainLeadsTo([leaf], [ca], earlier), false);
  });

  it("takes the registration id from the leaf's CN, case-insensitively, and the leaf must be valid now", () => {
    const leaf = x509(pki.issueClientCert("Dev-1").cert);
    assert.equal(checkLeaf([leaf], "dev-1").ok, true);
    const other = checkLeaf([leaf], "dev-2");
    assert.ok(!other.ok && /CN does not match/.test(other.error.message));
    const expired = checkLeaf([leaf], "dev-1", new Date(Date.now() + 48 * 60 * 60 * 1000));
    assert.ok(!expired.ok && /not valid now/.test(expired.error.message));
    const none = checkLeaf([], "dev-1");
    assert.ok(!none.ok && /no client certificate/.test(none.error.message));
  });

  it("matches an individual enrollment by the whole certificate or its thumbprint, never by name", () => {
    const enrolled = pki.issueClientCert("dev-1", { selfSigned: true });
    const sameName = pki.issueClientCert("dev-1", { selfSigned: true });
    const leaf = x509(enrolled.cert);
    assert.equal(leafMatchesEnrolled(leaf, [{ certificate: enrolled.cert }]), true);
    assert.equal(
      leafMatchesEnrolled(leaf, [{ info: { sha1Thumbprint: enrolled.thumbprint.toLowerCase() } }]),
      true,
    );
    assert.equal(
      leafMatchesEnrolled(leaf, [{ info: { sha256Thumbprint: enrolled.thumbprintSha256 } }]),
      true,
    );
    assert.equal(leafMatchesEnrolled(x509(sameName.cert), [{ certificate: enrolled.cert }]), false);
    assert.equal(
      leafMatchesEnrolled(x509(sameName.cert), [{ info: { sha1Thumbprint: enrolled.thumbprint } }]),
      false,
    );
    assert.equal(leafMatchesEnrolled(leaf, [{ certificate: "not a certificate" }]), false);
    assert.equal(leafMatchesEnrolled(leaf, []), false);
  });
});

/** A CA certificate (or a leaf) signed by `issuer`, with its own validity window; forge, as test-certs. */
function signed(
  commonName: string,
  issuer: { cert: string; key: string },
  options: { ca: boolean; notBefore?: Date; notAfter?: Date; organization?: string },
): { cert: string; key: string } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  cert.serialNumber = "01" + randomBytes(15).toString("hex");
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 24 * 60 * 60 * 1000);
  cert.setSubject([
    ...(options.organization ? [{ name: "organizationName", value: options.organization }] : []),
    ...(commonName ? [{ name: "commonName", value: commonName }] : []),
  ]);
  cert.setIssuer(forge.pki.certificateFromPem(issuer.cert).subject.attributes);
  cert.setExtensions([{ name: "basicConstraints", cA: options.ca }]);
  cert.sign(forge.pki.privateKeyFromPem(issuer.key), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: keyPem };
}

describe("DPS emulator X.509 chains through an intermediate CA", () => {
  const root = { cert: pki.caCert, key: pki.caKey };
  const intermediate = signed("Provisio Test Intermediate", root, { ca: true });
  const leaf = signed("dev-1", intermediate, { ca: false });

  it("accepts leaf + intermediate when the root is enrolled, and when the intermediate is", () => {
    assert.equal(chainLeadsTo([x509(leaf.cert), x509(intermediate.cert)], [ca]), true);
    assert.equal(chainLeadsTo([x509(leaf.cert)], [x509(intermediate.cert)]), true);
  });

  it("refuses the leaf alone when only the root is enrolled: the link to it is missing", () => {
    assert.equal(chainLeadsTo([x509(leaf.cert)], [ca]), false);
  });

  it("refuses an intermediate of the same name from the rogue CA", () => {
    const rogueIntermediate = signed(
      "Provisio Test Intermediate",
      { cert: rogue.caCert, key: rogue.caKey },
      { ca: true },
    );
    const rogueLeaf = signed("dev-1", rogueIntermediate, { ca: false });
    assert.equal(chainLeadsTo([x509(rogueLeaf.cert), x509(rogueIntermediate.cert)], [ca]), false);
    // the rogue leaf presented with the genuine intermediate: its link to the intermediate does not verify
    assert.equal(chainLeadsTo([x509(rogueLeaf.cert), x509(intermediate.cert)], [ca]), false);
  });

  it("refuses a chain with an expired intermediate, though the leaf and the root are valid", () => {
    const expired = signed("Provisio Test Intermediate", root, {
      ca: true,
      notBefore: new Date(Date.now() - 48 * 60 * 60 * 1000),
      notAfter: new Date(Date.now() - 60 * 60 * 1000),
    });
    const leafOfExpired = signed("dev-1", expired, { ca: false });
    assert.equal(chainLeadsTo([x509(leafOfExpired.cert), x509(expired.cert)], [ca]), false);
  });

  it("refuses an expired leaf under a valid enrolled CA", () => {
    const old = signed("dev-1", root, {
      ca: false,
      notBefore: new Date(Date.now() - 48 * 60 * 60 * 1000),
      notAfter: new Date(Date.now() - 60 * 60 * 1000),
    });
    assert.equal(chainLeadsTo([x509(old.cert)], [ca]), false);
  });
});

describe("DPS emulator certificate reading", () => {
  const root = { cert: pki.caCert, key: pki.caKey };
  const hour = 60 * 60 * 1000;
  // whole seconds (X.509 validity has no milliseconds), inside the test CA's own validity
  const from = new Date(Math.floor(Date.now() / 1000) * 1000);
  const to = new Date(from.getTime() + hour);
  const device = signed("dev-7", root, { ca: false, notBefore: from, notAfter: to, organization: "Plant 4" });
  const der = x509(device.cert).raw.toString("base64");

  it("reads a certificate as PEM, as base64 DER and as base64 of a PEM text, blanks around included", () => {
    const expected = x509(device.cert).fingerprint256;
    for (const text of [
      device.cert,
      `\n  ${device.cert}  \n`,
      der,
      ` ${der}\n`,
      Buffer.from(device.cert).toString("base64"),
      Buffer.from(`\n${device.cert}\n`).toString("base64"),
    ]) {
      assert.equal(parseCertificate(text).fingerprint256, expected);
    }
    assert.throws(() => parseCertificate("not a certificate"));
  });

  it("takes the CN from a subject with other fields before it, and has none for a subject without CN", () => {
    const leaf = x509(device.cert);
    assert.equal(leaf.subject, "O=Plant 4\nCN=dev-7");
    assert.equal(commonName(leaf), "dev-7");
    assert.equal(checkLeaf([leaf], "DEV-7", new Date(from.getTime() + 1000)).ok, true);
    const nameless = x509(signed("", root, { ca: false, organization: "Plant 4" }).cert);
    assert.equal(nameless.subject, "O=Plant 4");
    assert.equal(commonName(nameless), undefined);
    const refused = checkLeaf([nameless], "dev-7");
    assert.ok(!refused.ok && refused.error.status === 401);
  });

  it("counts a certificate valid from its first second to its last, and not a second outside", () => {
    const leaf = x509(device.cert);
    assert.equal(checkLeaf([leaf], "dev-7", from).ok, true);
    assert.equal(checkLeaf([leaf], "dev-7", to).ok, true);
    assert.equal(checkLeaf([leaf], "dev-7", new Date(from.getTime() - 1000)).ok, false);
    assert.equal(checkLeaf([leaf], "dev-7", new Date(to.getTime() + 1000)).ok, false);
    assert.equal(chainLeadsTo([leaf], [ca], from), true);
    assert.equal(chainLeadsTo([leaf], [ca], to), true);
    assert.equal(chainLeadsTo([leaf], [ca], new Date(to.getTime() + 1000)), false);
  });

  it("shows thumbprints in upper case and the certificate info as the service API does", () => {
    const leaf = x509(device.cert);
    const prints = thumbprints(leaf);
    assert.equal(prints.sha256, leaf.fingerprint256.replace(/:/g, ""));
    assert.equal(prints.sha1, leaf.fingerprint.replace(/:/g, ""));
    assert.deepEqual(certificateInfo(leaf), {
      subjectName: "O=Plant 4, CN=dev-7",
      sha1Thumbprint: prints.sha1,
      sha256Thumbprint: prints.sha256,
      issuerName: "CN=Provisio Test Root CA",
      notBeforeUtc: from.toISOString(),
      notAfterUtc: to.toISOString(),
      serialNumber: leaf.serialNumber,
      version: 3,
    });
  });

  it("joins the issuer's name fields as the service API shows them", () => {
    const plantCa = signed("Plant CA", root, { ca: true, organization: "Plant 4" });
    const leaf = x509(signed("dev-8", plantCa, { ca: false }).cert);
    assert.equal(certificateInfo(leaf).issuerName, "O=Plant 4, CN=Plant CA");
  });

  it("matches a lower-case SHA-256 thumbprint, and ignores empty slots and thumbprints that are not text", () => {
    const leaf = x509(device.cert);
    const prints = thumbprints(leaf);
    assert.equal(
      leafMatchesEnrolled(leaf, [{ info: { sha256Thumbprint: prints.sha256.toLowerCase() } }]),
      true,
    );
    assert.equal(leafMatchesEnrolled(leaf, [{}, { info: {} }]), false);
    assert.equal(leafMatchesEnrolled(leaf, [{ info: { sha256Thumbprint: "00" } }]), false);
    assert.equal(
      leafMatchesEnrolled(leaf, [{ info: { sha256Thumbprint: 42, sha1Thumbprint: null } }]),
      false,
    );
    assert.equal(
      leafMatchesEnrolled(leaf, [{ info: { sha256Thumbprint: "00", sha1Thumbprint: prints.sha1 } }]),
      true,
      "either thumbprint is enough",
    );
  });
});

describe("DPS emulator signing certificates", () => {
  const root = { cert: pki.caCert, key: pki.caKey };
  const intermediate = signed("Provisio Test Intermediate", root, { ca: true });

  it("accepts an enrolled intermediate presented alone: it is the anchor, though not self-signed", () => {
    assert.equal(chainLeadsTo([x509(intermediate.cert)], [x509(intermediate.cert)]), true);
  });

  it("refuses a valid leaf whose enrolled signing certificate has expired", () => {
    const expiredCa = signed("Provisio Expired CA", root, {
      ca: true,
      notBefore: new Date(Date.now() - 48 * 60 * 60 * 1000),
      notAfter: new Date(Date.now() - 60 * 60 * 1000),
    });
    const leaf = signed("dev-1", expiredCa, { ca: false });
    assert.equal(chainLeadsTo([x509(leaf.cert)], [x509(expiredCa.cert)]), false);
  });
});
