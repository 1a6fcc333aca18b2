// Enrollments (individual and groups) and device registration states of the DPS emulator, in the service
// API's JSON shapes, persisted as one JSON file (written atomically: temp file + rename) and reloaded on start.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { InvalidTpmPublicError, parseRsaStoragePublic } from "../tpm-activation.js";
import { certificateInfo, parseCertificate } from "./credentials.js";
import { DPS_ERROR, DpsError } from "./errors.js";
import type {
  AttestationMechanism,
  DeviceRegistrationState,
  EnrollmentCommon,
  EnrollmentGroup,
  IndividualEnrollment,
  X509CertificateWithInfo,
} from "./types.js";

const FILE_FORMAT_VERSION = 1;

interface StoredRegistration {
  state: DeviceRegistrationState;
  /** The group the device registered through; absent for individual enrollments. */
  enrollmentGroupId?: string;
}

interface StoreFile {
  version: number;
  individualEnrollments: IndividualEnrollment[];
  enrollmentGroups: EnrollmentGroup[];
  registrations: StoredRegistration[];
}

export class EnrollmentStoreLoadError extends Error {
  override readonly name = "EnrollmentStoreLoadError";
}

export interface EnrollmentStoreOptions {
  /** JSON file that keeps enrollments and registrations across restarts; absent = memory only. */
  file?: string;
}

// DPS registration ids: up to 128 characters, alphanumerics and - . _ :, starting and ending alphanumeric.
const REGISTRATION_ID = /^[A-Za-z0-9](?:[A-Za-z0-9._:-]{0,126}[A-Za-z0-9])?$/;
// Enrollment group ids follow the same alphabet.
const ENROLLMENT_GROUP_ID = REGISTRATION_ID;

export function isValidRegistrationId(id: unknown): id is string {
  return typeof id === "string" && REGISTRATION_ID.test(id);
}

const key = (id: string): string => id.toLowerCase();
const newEtag = (): string => `"${randomUUID()}"`;
const generatedKey = (): string => randomBytes(64).toString("base64");

export class EnrollmentStore {
  private readonly file: string | undefined;
  private readonly individual = new Map<string, IndividualEnrollment>();
  private readonly groups = new Map<string, EnrollmentGroup>();
  private readonly registrations = new Map<string, StoredRegistration>();

  constructor(options: EnrollmentStoreOptions = {}) {
    this.file = options.file;
    if (this.file) this.load(this.file);
  }

  // ---- individual enrollments ----

  listIndividualEnrollments(): IndividualEnrollment[] {
    return [...this.individual.values()].map((e) => this.withRegistrationState(e));
  }

  getIndividualEnrollment(registrationId: string): IndividualEnrollment | undefined {
    const found = this.individual.get(key(registrationId));
    return found && this.withRegistrationState(found);
  }

  /** Creates or replaces an enrollment (keys are generated when a symmetric key enrollment has none). */
  putIndividualEnrollment(enrollment: IndividualEnrollment, ifMatch?: string): IndividualEnrollment {
    if (!isValidRegistrationId(enrollment?.registrationId)) {
      throw new DpsError(400, DPS_ERROR.invalidRegistrationId, "invalid registrationId");
    }
    if (enrollment.deviceId !== undefined && !isValidDeviceId(enrollment.deviceId)) {
      throw new DpsError(400, DPS_ERROR.badRequest, "invalid deviceId");
    }
    const existing = this.individual.get(key(enrollment.registrationId));
    checkEtag(existing?.etag, ifMatch);
    const stored = normalizeCommon(
      { ...clone(enrollment), registrationState: undefined },
      existing,
      "individual",
    ) as IndividualEnrollment;
    delete stored.registrationState;
    this.individual.set(key(stored.registrationId), stored);
    this.save();
    return this.withRegistrationState(stored);
  }

  deleteIndividualEnrollment(registrationId: string, ifMatch?: string): boolean {
    const existing = this.individual.get(key(registrationId));
    if (!existing) return false;
    checkEtag(existing.etag, ifMatch);
    this.individual.delete(key(registrationId));
    // Azure deletes the enrollment's registration record with it: enrolling again starts afresh.
    const registration = this.registrations.get(key(registrationId));
    if (registration && !registration.enrollmentGroupId) this.registrations.delete(key(registrationId));
    this.save();
    return true;
  }

  // ---- enrollment groups ----

  listEnrollmentGroups(): EnrollmentGroup[] {
    return [...this.groups.values()].map(clone);
  }

  getEnrollmentGroup(enrollmentGroupId: string): EnrollmentGroup | undefined {
    const found = this.groups.get(key(enrollmentGroupId));
    return found && clone(found);
  }

  putEnrollmentGroup(group: EnrollmentGroup, ifMatch?: string): EnrollmentGroup {
    if (typeof group?.enrollmentGroupId !== "string" || !ENROLLMENT_GROUP_ID.test(group.enrollmentGroupId)) {
      throw new DpsError(400, DPS_ERROR.badRequest, "invalid enrollmentGroupId");
    }
    const existing = this.groups.get(key(group.enrollmentGroupId));
    checkEtag(existing?.etag, ifMatch);
    const stored = normalizeCommon(clone(group), existing, "group");
    this.groups.set(key(stored.enrollmentGroupId), stored);
    this.save();
    return clone(stored);
  }

  deleteEnrollmentGroup(enrollmentGroupId: string, ifMatch?: string): boolean {
    const existing = this.groups.get(key(enrollmentGroupId));
    if (!existing) return false;
    checkEtag(existing.etag, ifMatch);
    this.groups.delete(key(enrollmentGroupId));
    this.save();
    return true;
  }

  // ---- registration states ----

  getRegistrationState(registrationId: string): DeviceRegistrationState | undefined {
    const found = this.registrations.get(key(registrationId));
    return found && clone(found.state);
  }

  /** The group a registration came through (undefined for individual enrollments or unknown ids). */
  getRegistrationGroupId(registrationId: string): string | undefined {
    return this.registrations.get(key(registrationId))?.enrollmentGroupId;
  }

  /** All registration states, or those of one enrollment group (the service API's registration query). */
  listRegistrationStates(enrollmentGroupId?: string): DeviceRegistrationState[] {
    return [...this.registrations.values()]
      .filter(
        (r) => enrollmentGroupId === undefined || key(r.enrollmentGroupId ?? "") === key(enrollmentGroupId),
      )
      .map((r) => clone(r.state));
  }

  /** Records a registration outcome (DPS itself calls this); a fresh etag is assigned. */
  putRegistrationState(state: DeviceRegistrationState, enrollmentGroupId?: string): DeviceRegistrationState {
    const stored: StoredRegistration = {
      state: { ...clone(state), etag: Buffer.from(newEtag()).toString("base64") },
      ...(enrollmentGroupId ? { enrollmentGroupId } : {}),
    };
    this.registrations.set(key(state.registrationId), stored);
    this.save();
    return clone(stored.state);
  }

  deleteRegistrationState(registrationId: string, ifMatch?: string): boolean {
    const existing = this.registrations.get(key(registrationId));
    if (!existing) return false;
    checkEtag(existing.state.etag, ifMatch);
    this.registrations.delete(key(registrationId));
    this.save();
    return true;
  }

  // ---- persistence ----

  private withRegistrationState(enrollment: IndividualEnrollment): IndividualEnrollment {
    const copy = clone(enrollment);
    const state = this.registrations.get(key(enrollment.registrationId));
    if (state && !state.enrollmentGroupId) copy.registrationState = clone(state.state);
    return copy;
  }

  private load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new EnrollmentStoreLoadError(`cannot read ${file}: ${(error as Error).message}`);
    }
    let data: StoreFile;
    try {
      data = JSON.parse(text) as StoreFile;
    } catch {
      throw new EnrollmentStoreLoadError(`${file} is not valid JSON`);
    }
    if (data?.version !== FILE_FORMAT_VERSION) {
      throw new EnrollmentStoreLoadError(`${file}: unsupported format version ${String(data?.version)}`);
    }
    for (const e of data.individualEnrollments ?? []) this.individual.set(key(e.registrationId), e);
    for (const g of data.enrollmentGroups ?? []) this.groups.set(key(g.enrollmentGroupId), g);
    for (const r of data.registrations ?? []) this.registrations.set(key(r.state.registrationId), r);
  }

  private save(): void {
    if (!this.file) return;
    const data: StoreFile = {
      version: FILE_FORMAT_VERSION,
      individualEnrollments: [...this.individual.values()],
      enrollmentGroups: [...this.groups.values()],
      registrations: [...this.registrations.values()],
    };
    mkdirSync(dirname(this.file), { recursive: true });
    // The file holds symmetric keys: owner-only, and replaced in one rename so a crash never leaves half a file.
    const temp = `${this.file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    writeFileSync(temp, JSON.stringify(data, null, 2), { mode: 0o600 });
    renameSync(temp, this.file);
  }
}

function isValidDeviceId(id: unknown): boolean {
  // IoT Hub device ids: up to 128 ASCII characters, letters, digits and - . % _ * ? ! ( ) , : = @ $ '
  return typeof id === "string" && /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/.test(id);
}

function checkEtag(current: string | undefined, ifMatch: string | undefined): void {
  if (ifMatch === undefined || ifMatch === "*") return;
  if (current === undefined || current !== ifMatch) {
    throw new DpsError(412, DPS_ERROR.preconditionFailed, "etag mismatch");
  }
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Validates what DPS validates and fills in what DPS fills in (keys, timestamps, etag, defaults). */
function normalizeCommon<T extends EnrollmentCommon>(
  enrollment: T,
  existing: EnrollmentCommon | undefined,
  kind: "individual" | "group",
): T {
  const now = new Date().toISOString();
  enrollment.attestation = normalizeAttestation(enrollment.attestation, kind);
  const status = enrollment.provisioningStatus ?? "enabled";
  if (status !== "enabled" && status !== "disabled") {
    throw new DpsError(400, DPS_ERROR.badRequest, "provisioningStatus must be enabled or disabled");
  }
  enrollment.provisioningStatus = status;
  const policy = enrollment.allocationPolicy;
  if (policy !== undefined && !["hashed", "geoLatency", "static", "custom"].includes(policy)) {
    throw new DpsError(400, DPS_ERROR.badRequest, "unknown allocationPolicy");
  }
  if (enrollment.iotHubs !== undefined && !isStringArray(enrollment.iotHubs)) {
    throw new DpsError(400, DPS_ERROR.badRequest, "iotHubs must be a list of host names");
  }
  if (policy === "static" && (enrollment.iotHubs?.length ?? 0) > 1) {
    throw new DpsError(400, DPS_ERROR.badRequest, "static allocation takes exactly one IoT hub");
  }
  if (policy === "custom") {
    const url = enrollment.customAllocationDefinition?.webhookUrl;
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
      throw new DpsError(
        400,
        DPS_ERROR.badRequest,
        "custom allocation needs customAllocationDefinition.webhookUrl",
      );
    }
  }
  const reprovision = enrollment.reprovisionPolicy;
  if (
    reprovision !== undefined &&
    (typeof reprovision.updateHubAssignment !== "boolean" ||
      typeof reprovision.migrateDeviceData !== "boolean")
  ) {
    throw new DpsError(
      400,
      DPS_ERROR.badRequest,
      "reprovisionPolicy needs updateHubAssignment and migrateDeviceData",
    );
  }
  const twin = enrollment.initialTwin;
  if (twin !== undefined && (typeof twin !== "object" || twin === null || Array.isArray(twin))) {
    throw new DpsError(400, DPS_ERROR.badRequest, "initialTwin must be an object");
  }
  enrollment.createdDateTimeUtc = existing?.createdDateTimeUtc ?? now;
  enrollment.lastUpdatedDateTimeUtc = now;
  enrollment.etag = newEtag();
  return enrollment;
}

const THUMBPRINT = /^(?:[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$/;

/** A certificate entry: the certificate, or for individual enrollments only its thumbprint. */
function describesCertificate(slot: X509CertificateWithInfo, kind: "individual" | "group"): boolean {
  if (typeof slot.certificate === "string" && slot.certificate.length > 0) return true;
  if (kind === "group") return false;
  const info = slot.info ?? {};
  return [info.sha1Thumbprint, info.sha256Thumbprint].some(
    (t) => typeof t === "string" && THUMBPRINT.test(t),
  );
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string" && v.length > 0);
}

function normalizeAttestation(
  attestation: AttestationMechanism | undefined,
  kind: "individual" | "group",
): AttestationMechanism {
  switch (attestation?.type) {
    case "symmetricKey": {
      const given = attestation.symmetricKey;
      const primaryKey = given?.primaryKey || generatedKey();
      const secondaryKey = given?.secondaryKey || generatedKey();
      for (const k of [primaryKey, secondaryKey]) {
        if (!/^[A-Za-z0-9+/]+={0,2}$/.test(k) || Buffer.from(k, "base64").length < 16) {
          throw new DpsError(400, DPS_ERROR.badRequest, "symmetric keys must be base64, at least 16 bytes");
        }
      }
      return { type: "symmetricKey", symmetricKey: { primaryKey, secondaryKey } };
    }
    case "tpm": {
      if (kind === "group")
        throw new DpsError(400, DPS_ERROR.badRequest, "TPM enrollment groups are not supported");
      const ek = attestation.tpm?.endorsementKey;
      if (typeof ek !== "string")
        throw new DpsError(400, DPS_ERROR.badRequest, "tpm.endorsementKey is required");
      try {
        parseRsaStoragePublic(Buffer.from(ek, "base64"));
      } catch (error) {
        const why = error instanceof InvalidTpmPublicError ? error.message : "unreadable";
        throw new DpsError(400, DPS_ERROR.badRequest, `tpm.endorsementKey: ${why}`);
      }
      return {
        type: "tpm",
        tpm: {
          endorsementKey: ek,
          ...(attestation.tpm?.storageRootKey ? { storageRootKey: attestation.tpm.storageRootKey } : {}),
        },
      };
    }
    case "x509": {
      const x509 = structuredClone(attestation.x509 ?? {});
      if (x509.caReferences) {
        throw new DpsError(
          400,
          DPS_ERROR.badRequest,
          "x509.caReferences are not supported: give signingCertificates",
        );
      }
      const certificates = kind === "individual" ? x509.clientCertificates : x509.signingCertificates;
      if (!certificates?.primary || !describesCertificate(certificates.primary, kind)) {
        throw new DpsError(
          400,
          DPS_ERROR.badRequest,
          kind === "individual"
            ? "x509.clientCertificates.primary needs a certificate (or its info.sha1Thumbprint/sha256Thumbprint)"
            : "x509.signingCertificates.primary.certificate is required",
        );
      }
      for (const slot of [certificates.primary, certificates.secondary]) {
        if (!slot) continue;
        if (!describesCertificate(slot, kind))
          throw new DpsError(400, DPS_ERROR.badRequest, "unusable x509 certificate entry");
        if (!slot.certificate) continue;
        try {
          // Filled in as the service does, so clients see subject, thumbprints and validity.
          slot.info = certificateInfo(parseCertificate(slot.certificate));
        } catch {
          throw new DpsError(400, DPS_ERROR.badRequest, "x509 certificate is not a readable certificate");
        }
      }
      return { type: "x509", x509 };
    }
    default:
      throw new DpsError(400, DPS_ERROR.badRequest, "attestation.type must be tpm, x509 or symmetricKey");
  }
}
