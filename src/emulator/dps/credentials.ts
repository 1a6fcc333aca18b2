// Checks of what a device presents to DPS: SAS tokens (symmetric key, TPM identity key) and X.509 client
// certificate chains. Every failure is a 401 whose message names the reason but never a key or token.
import { createHash, X509Certificate } from "node:crypto";
import { parseSasToken, sasSignatureMatches } from "../../common/sas.js";
import { unauthorized, type DpsError } from "./errors.js";

/** skn DPS devices use for registration tokens (docs/dps-protocol.md §6.1/§6.2). */
const REGISTRATION_KEY_NAME = "registration";

export type Checked<T> = { ok: true; value: T } | { ok: false; error: DpsError };

/**
 * Verifies a registration SAS token: audience `{idScope}/registrations/{registrationId}` (case-insensitive),
 * expiry in the future, key name `registration`, HMAC with one of `keys`. Returns the index of the key that
 * signed it. The signature covers sr as sent: raw for the SDK's symmetric key tokens, url-encoded for TPM.
 */
export function verifyRegistrationToken(
  token: string | undefined,
  idScope: string,
  registrationId: string,
  keys: readonly Buffer[],
  nowSeconds: number = Math.floor(Date.now() / 1000),
): Checked<number> {
  const fields = token === undefined ? undefined : parseSasToken(token);
  if (!fields) return { ok: false, error: unauthorized("malformed SAS token") };
  const audience = `${idScope}/registrations/${registrationId}`.toLowerCase();
  if (fields.resource.toLowerCase() !== audience) {
    return { ok: false, error: unauthorized("SAS token audience does not match the registration") };
  }
  if (fields.expiry <= nowSeconds) return { ok: false, error: unauthorized("SAS token expired") };
  if (fields.keyName !== undefined && fields.keyName !== REGISTRATION_KEY_NAME) {
    return { ok: false, error: unauthorized("SAS token key name must be 'registration'") };
  }
  const index = keys.findIndex((key) => sasSignatureMatches(fields, key));
  if (index < 0) return { ok: false, error: unauthorized("SAS token signature is not valid") };
  return { ok: true, value: index };
}

export { deriveDeviceKey } from "../../common/group-key.js";

/**
 * Reads a certificate given as PEM, as base64 DER, or as base64 of a PEM text (all three are accepted by the
 * service API; the official SDK tests send the last form).
 */
export function parseCertificate(text: string): X509Certificate {
  const trimmed = text.trim();
  if (trimmed.startsWith("-----BEGIN")) return new X509Certificate(trimmed);
  const decoded = Buffer.from(trimmed, "base64").toString("latin1").trim();
  if (decoded.startsWith("-----BEGIN")) return new X509Certificate(decoded);
  return new X509Certificate(`-----BEGIN CERTIFICATE-----\n${trimmed}\n-----END CERTIFICATE-----`);
}

/** Upper-case hex thumbprints as IoT Hub and DPS show them. */
export function thumbprints(cert: X509Certificate): { sha1: string; sha256: string } {
  return {
    sha1: createHash("sha1").update(cert.raw).digest("hex").toUpperCase(),
    sha256: createHash("sha256").update(cert.raw).digest("hex").toUpperCase(),
  };
}

/** CN of a certificate's subject ("CN=x\nO=y" in Node's X509Certificate). */
export function commonName(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split("\n")) {
    if (line.startsWith("CN=")) return line.slice(3);
  }
  return undefined;
}

function isCurrentlyValid(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

/** The leaf must be valid now and its CN must be the registration id (DPS takes the id from the CN). */
export function checkLeaf(
  chain: readonly X509Certificate[],
  registrationId: string,
  now = new Date(),
): Checked<X509Certificate> {
  const leaf = chain[0];
  if (!leaf) return { ok: false, error: unauthorized("no client certificate") };
  if (!isCurrentlyValid(leaf, now))
    return { ok: false, error: unauthorized("client certificate is not valid now") };
  if (commonName(leaf)?.toLowerCase() !== registrationId.toLowerCase()) {
    return { ok: false, error: unauthorized("client certificate CN does not match the registration id") };
  }
  return { ok: true, value: leaf };
}

/** An enrolled client certificate: the certificate itself, or (emulator convenience) only its thumbprint. */
export interface EnrolledCertificate {
  certificate?: string;
  info?: { sha1Thumbprint?: unknown; sha256Thumbprint?: unknown };
}

/** Individual X.509 enrollment: the leaf is the enrolled certificate (thumbprint match). */
export function leafMatchesEnrolled(
  leaf: X509Certificate,
  enrolled: readonly EnrolledCertificate[],
): boolean {
  const presented = thumbprints(leaf);
  return enrolled.some((slot) => {
    if (slot.certificate) {
      try {
        return thumbprints(parseCertificate(slot.certificate)).sha256 === presented.sha256;
      } catch {
        return false;
      }
    }
    const { sha1Thumbprint, sha256Thumbprint } = slot.info ?? {};
    return (
      (typeof sha256Thumbprint === "string" && sha256Thumbprint.toUpperCase() === presented.sha256) ||
      (typeof sha1Thumbprint === "string" && sha1Thumbprint.toUpperCase() === presented.sha1)
    );
  });
}

/** X509CertificateInfo as the service API and the device result show it. */
export function certificateInfo(cert: X509Certificate): Record<string, unknown> {
  const prints = thumbprints(cert);
  return {
    subjectName: cert.subject.replace(/\n/g, ", "),
    sha1Thumbprint: prints.sha1,
    sha256Thumbprint: prints.sha256,
    issuerName: cert.issuer.replace(/\n/g, ", "),
    notBeforeUtc: new Date(cert.validFrom).toISOString(),
    notAfterUtc: new Date(cert.validTo).toISOString(),
    serialNumber: cert.serialNumber,
    version: 3,
  };
}

/**
 * Group X.509 enrollment: the presented chain (leaf first, then what the device sent) must lead, link by
 * verified link, to one of the signing certificates, every certificate valid now.
 */
export function chainLeadsTo(
  chain: readonly X509Certificate[],
  signingCerts: readonly X509Certificate[],
  now = new Date(),
): boolean {
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i];
    if (!isCurrentlyValid(cert, now)) return false;
    const anchor = signingCerts.find(
      (ca) => ca.fingerprint256 === cert.fingerprint256 || (isCurrentlyValid(ca, now) && issuedBy(cert, ca)),
    );
    if (anchor) return true;
    const next = chain[i + 1];
    if (!next || !issuedBy(cert, next)) return false;
  }
  return false;
}
