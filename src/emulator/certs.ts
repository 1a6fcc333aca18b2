// The emulator's own TLS material: a CA (devices and tools are told to trust it) and a server certificate
// signed by it. Made on first start in the data directory and reused afterwards, so a device or a Node-RED
// flow that was given the CA once keeps working across restarts. Keys are made with node:crypto (native,
// fast) and the certificates are assembled with node-forge.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import forge from "node-forge";

export const CA_CERT_FILE = "ca.pem";
export const CA_KEY_FILE = "ca-key.pem";
export const SERVER_CERT_FILE = "server.pem";
export const SERVER_KEY_FILE = "server-key.pem";

const CA_VALIDITY_YEARS = 10;
const SERVER_VALIDITY_YEARS = 2;
/** Renew the server certificate when it has less than this left. */
const SERVER_RENEW_MARGIN_MS = 30 * 24 * 3600 * 1000;
const KEY_FILE_MODE = 0o600;

export interface EmulatorCertificates {
  caCertPem: string;
  caCertFile: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** The names and addresses the server certificate is valid for. */
  subjectAltNames: string[];
  /** True when this call created the CA (first start). */
  createdCa: boolean;
  /** True when this call (re)issued the server certificate. */
  issuedServerCertificate: boolean;
}

export interface EnsureCertificatesOptions {
  dataDir: string;
  /** Extra host names or IP addresses for the server certificate (hub host names, the listen address). */
  hostNames?: string[];
}

export class CertificateError extends Error {
  override readonly name = "CertificateError";
}

/** "localhost:5671" -> "localhost"; "[::1]:443" -> "::1". */
export function hostWithoutPort(hostName: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hostName);
  if (bracketed?.[1]) return bracketed[1];
  if (isIP(hostName) === 6) return hostName;
  const colon = hostName.lastIndexOf(":");
  return colon > 0 && /^\d+$/.test(hostName.slice(colon + 1)) ? hostName.slice(0, colon) : hostName;
}

/** The SANs of the server certificate: always localhost and 127.0.0.1, plus the given hosts (ports stripped). */
export function serverSubjectAltNames(hostNames: readonly string[] = []): string[] {
  const names = new Set<string>(["localhost", "127.0.0.1"]);
  for (const hostName of hostNames) {
    const host = hostWithoutPort(hostName.trim()).toLowerCase();
    if (host.length > 0) names.add(host);
  }
  return [...names].sort();
}

function newRsaKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem);
  return { privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

function randomSerialNumber(): string {
  // Positive 16-byte serial (RFC 5280 §4.1.2.2: at most 20 octets, non-negative).
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  return serial.toString("hex");
}

function validity(cert: forge.pki.Certificate, years: number): void {
  const notBefore = new Date(Date.now() - 60_000); // tolerate small clock skew between processes
  const notAfter = new Date(notBefore);
  notAfter.setFullYear(notAfter.getFullYear() + years);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
}

function createCa(): { certPem: string; keyPem: string } {
  const keys = newRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialNumber();
  validity(cert, CA_VALIDITY_YEARS);
  const subject = [
    { name: "commonName", value: "Provisio Azure IoT Local Emulator CA" },
    { name: "organizationName", value: "provisio local emulator" },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

function issueServerCertificate(
  caCertPem: string,
  caKeyPem: string,
  subjectAltNames: string[],
): { certPem: string; keyPem: string } {
  const caCert = forge.pki.certificateFromPem(caCertPem);
  const caKey = forge.pki.privateKeyFromPem(caKeyPem);
  const keys = newRsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = randomSerialNumber();
  validity(cert, SERVER_VALIDITY_YEARS);
  cert.setSubject([{ name: "commonName", value: "localhost" }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      // GeneralName types (RFC 5280 §4.2.1.6): 2 = dNSName, 7 = iPAddress.
      altNames: subjectAltNames.map((name) =>
        isIP(name) ? { type: 7, ip: name } : { type: 2, value: name },
      ),
    },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** The SANs (DNS names and IPs) a PEM certificate carries, lower case. */
function certificateAltNames(cert: forge.pki.Certificate): string[] {
  const extension: { altNames?: Array<{ type: number; value?: string; ip?: string }> } | undefined =
    cert.getExtension("subjectAltName");
  return (extension?.altNames ?? [])
    .map((entry) => (entry.type === 7 ? (entry.ip ?? "") : (entry.value ?? "")).toLowerCase())
    .filter((name) => name.length > 0);
}

function serverCertificateStillFits(
  serverCertPem: string,
  caCertPem: string,
  wantedAltNames: readonly string[],
): boolean {
  try {
    const cert = forge.pki.certificateFromPem(serverCertPem);
    const ca = forge.pki.certificateFromPem(caCertPem);
    if (!ca.verify(cert)) return false;
    if (cert.validity.notAfter.getTime() - Date.now() < SERVER_RENEW_MARGIN_MS) return false;
    const present = new Set(certificateAltNames(cert));
    return wantedAltNames.every((name) => present.has(name));
  } catch {
    return false;
  }
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function writeKeyFile(path: string, pem: string): Promise<void> {
  await writeFile(path, pem, { mode: KEY_FILE_MODE });
  await chmod(path, KEY_FILE_MODE); // writeFile's mode only applies to new files
}

/**
 * Loads the CA and server certificate from `dataDir`, creating them on first use. The CA is never replaced
 * once made; the server certificate is re-issued (by the same CA) when it lacks one of the wanted names or
 * is about to expire.
 */
export async function ensureCertificates(options: EnsureCertificatesOptions): Promise<EmulatorCertificates> {
  const { dataDir } = options;
  await mkdir(dataDir, { recursive: true });
  const caCertFile = join(dataDir, CA_CERT_FILE);
  const caKeyFile = join(dataDir, CA_KEY_FILE);
  const serverCertFile = join(dataDir, SERVER_CERT_FILE);
  const serverKeyFile = join(dataDir, SERVER_KEY_FILE);

  let caCertPem = await readIfPresent(caCertFile);
  let caKeyPem = await readIfPresent(caKeyFile);
  let createdCa = false;
  if (caCertPem === undefined || caKeyPem === undefined) {
    if (caCertPem !== undefined || caKeyPem !== undefined) {
      throw new CertificateError(
        `the data directory holds only half of the CA (${CA_CERT_FILE} / ${CA_KEY_FILE}); restore or remove it`,
      );
    }
    const ca = createCa();
    caCertPem = ca.certPem;
    caKeyPem = ca.keyPem;
    await writeKeyFile(caKeyFile, caKeyPem);
    await writeFile(caCertFile, caCertPem);
    createdCa = true;
  }

  const subjectAltNames = serverSubjectAltNames(options.hostNames);
  let serverCertPem = await readIfPresent(serverCertFile);
  let serverKeyPem = await readIfPresent(serverKeyFile);
  let issuedServerCertificate = false;
  if (
    serverCertPem === undefined ||
    serverKeyPem === undefined ||
    !serverCertificateStillFits(serverCertPem, caCertPem, subjectAltNames)
  ) {
    // Keep the names the old certificate had, so a name used before keeps working.
    const previous = serverCertPem ? safeAltNames(serverCertPem) : [];
    const names = serverSubjectAltNames([...subjectAltNames, ...previous]);
    const server = issueServerCertificate(caCertPem, caKeyPem, names);
    serverCertPem = server.certPem;
    serverKeyPem = server.keyPem;
    await writeKeyFile(serverKeyFile, serverKeyPem);
    await writeFile(serverCertFile, serverCertPem);
    issuedServerCertificate = true;
  }
  const finalNames = safeAltNames(serverCertPem);
  return {
    caCertPem,
    caCertFile,
    serverCertPem,
    serverKeyPem,
    subjectAltNames: finalNames,
    createdCa,
    issuedServerCertificate,
  };
}

function safeAltNames(certPem: string): string[] {
  try {
    return certificateAltNames(forge.pki.certificateFromPem(certPem));
  } catch {
    return [];
  }
}
