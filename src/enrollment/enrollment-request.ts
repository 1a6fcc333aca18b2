// msg.payload -> an individual enrollment in the DPS service API's JSON shape. A station writes the short
// form (registrationId + endorsementKey, tags, desired, iotEdge...), an integration may send DPS's own
// shape (attestation, initialTwin, capabilities); both are checked here, so a typo is an error that names
// the field instead of an enrollment DPS silently stores without it.

export type ProvisioningStatus = "enabled" | "disabled";
export type AllocationPolicy = "hashed" | "geoLatency" | "static" | "custom";

export interface AttestationMechanism {
  type: "tpm" | "symmetricKey" | "x509";
  tpm?: { endorsementKey: string; storageRootKey?: string };
  symmetricKey?: { primaryKey?: string; secondaryKey?: string };
  x509?: {
    clientCertificates?: {
      primary?: { certificate: string };
      secondary?: { certificate: string };
    };
    caReferences?: { primary?: string; secondary?: string };
  };
}

/** The individual enrollment as the DPS service API takes and returns it. */
export interface IndividualEnrollment {
  registrationId: string;
  attestation: AttestationMechanism;
  deviceId?: string;
  iotHubHostName?: string;
  iotHubs?: string[];
  initialTwin?: { tags?: Record<string, unknown>; properties?: { desired?: Record<string, unknown> } };
  provisioningStatus?: ProvisioningStatus;
  allocationPolicy?: AllocationPolicy;
  reprovisionPolicy?: { updateHubAssignment: boolean; migrateDeviceData: boolean };
  capabilities?: { iotEdge: boolean };
  customAllocationDefinition?: { webhookUrl: string; apiVersion: string };
  etag?: string;
  [field: string]: unknown;
}

export class EnrollmentRequestError extends Error {
  override readonly name = "EnrollmentRequestError";
}

/** Fields of the short form and of DPS's shape this node accepts in msg.payload. */
export const ENROLLMENT_FIELDS = [
  "registrationId",
  "endorsementKey",
  "storageRootKey",
  "symmetricKey",
  "certificate",
  "secondaryCertificate",
  "attestation",
  "deviceId",
  "iotHubHostName",
  "iotHubs",
  "tags",
  "desired",
  "initialTwin",
  "provisioningStatus",
  "allocationPolicy",
  "reprovisionPolicy",
  "iotEdge",
  "capabilities",
  "customAllocationDefinition",
  "etag",
] as const;

/** Read-only fields DPS returns: a payload taken from a "get" may carry them back in, they are dropped. */
const RETURNED_FIELDS = ["createdDateTimeUtc", "lastUpdatedDateTimeUtc", "registrationState"];

const PROVISIONING_STATUSES: readonly string[] = ["enabled", "disabled"];
const ALLOCATION_POLICIES: readonly string[] = ["hashed", "geoLatency", "static", "custom"];

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function optionalString(source: Record<string, unknown>, field: string): string | undefined {
  const value = source[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || value.trim() === "") {
    throw new EnrollmentRequestError(`${field} must be a non-empty string`);
  }
  return value.trim();
}

function optionalObject(source: Record<string, unknown>, field: string): Record<string, unknown> | undefined {
  const value = source[field];
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw new EnrollmentRequestError(`${field} must be an object`);
  return value;
}

function isBase64(text: string): boolean {
  return /^[A-Za-z0-9+/\s]+={0,2}\s*$/.test(text) && Buffer.from(text, "base64").length > 0;
}

function attestationOf(payload: Record<string, unknown>): AttestationMechanism {
  const given: string[] = [];
  if (payload.endorsementKey !== undefined) given.push("endorsementKey");
  if (payload.symmetricKey !== undefined) given.push("symmetricKey");
  if (payload.certificate !== undefined) given.push("certificate");
  if (payload.attestation !== undefined) given.push("attestation");
  if (given.length !== 1) {
    throw new EnrollmentRequestError(
      given.length === 0
        ? "no attestation: give endorsementKey (TPM), symmetricKey (symmetric key), certificate (X.509) or attestation"
        : `give only one attestation, not ${given.join(" and ")}`,
    );
  }
  if (payload.secondaryCertificate !== undefined && payload.certificate === undefined) {
    throw new EnrollmentRequestError("secondaryCertificate belongs to an X.509 attestation (certificate)");
  }
  if (payload.endorsementKey !== undefined) {
    const endorsementKey = optionalString(payload, "endorsementKey") ?? "";
    if (!isBase64(endorsementKey)) throw new EnrollmentRequestError("endorsementKey must be base64");
    const storageRootKey = optionalString(payload, "storageRootKey");
    return { type: "tpm", tpm: { endorsementKey, ...(storageRootKey ? { storageRootKey } : {}) } };
  }
  if (payload.storageRootKey !== undefined) {
    throw new EnrollmentRequestError("storageRootKey belongs to a TPM attestation (endorsementKey)");
  }
  if (payload.symmetricKey !== undefined) {
    // true or {} lets DPS generate both keys
    if (payload.symmetricKey === true) return { type: "symmetricKey", symmetricKey: {} };
    const keys = optionalObject(payload, "symmetricKey") ?? {};
    const unknown = Object.keys(keys).filter((k) => k !== "primaryKey" && k !== "secondaryKey");
    if (unknown.length > 0) {
      throw new EnrollmentRequestError(
        `symmetricKey takes primaryKey and secondaryKey, not ${unknown.join(", ")}`,
      );
    }
    const primaryKey = optionalString(keys, "primaryKey");
    const secondaryKey = optionalString(keys, "secondaryKey");
    for (const key of [primaryKey, secondaryKey]) {
      if (key !== undefined && !isBase64(key))
        throw new EnrollmentRequestError("symmetric keys must be base64");
    }
    return {
      type: "symmetricKey",
      symmetricKey: { ...(primaryKey ? { primaryKey } : {}), ...(secondaryKey ? { secondaryKey } : {}) },
    };
  }
  if (payload.certificate !== undefined) {
    optionalString(payload, "certificate"); // validates; the PEM itself is kept as given
    const certificate = payload.certificate as string;
    const secondary =
      optionalString(payload, "secondaryCertificate") && (payload.secondaryCertificate as string);
    for (const pem of [certificate, secondary]) {
      if (pem !== undefined && !pem.includes("-----BEGIN CERTIFICATE-----")) {
        throw new EnrollmentRequestError(
          "certificate must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
        );
      }
    }
    return {
      type: "x509",
      x509: {
        clientCertificates: {
          primary: { certificate },
          ...(secondary ? { secondary: { certificate: secondary } } : {}),
        },
      },
    };
  }
  const attestation = optionalObject(payload, "attestation") ?? {};
  if (!["tpm", "symmetricKey", "x509"].includes(attestation.type as string)) {
    throw new EnrollmentRequestError('attestation.type must be "tpm", "symmetricKey" or "x509"');
  }
  if (
    attestation.type === "tpm" &&
    typeof (attestation.tpm as { endorsementKey?: unknown })?.endorsementKey !== "string"
  ) {
    throw new EnrollmentRequestError("attestation.tpm.endorsementKey is missing");
  }
  return attestation as unknown as AttestationMechanism;
}

function initialTwinOf(payload: Record<string, unknown>): IndividualEnrollment["initialTwin"] {
  const tags = optionalObject(payload, "tags");
  const desired = optionalObject(payload, "desired");
  const initialTwin = optionalObject(payload, "initialTwin");
  if (initialTwin && (tags || desired)) {
    throw new EnrollmentRequestError("give either initialTwin or tags/desired, not both");
  }
  if (initialTwin) return initialTwin;
  if (!tags && !desired) return undefined;
  return { ...(tags ? { tags } : {}), ...(desired ? { properties: { desired } } : {}) };
}

function capabilitiesOf(payload: Record<string, unknown>): IndividualEnrollment["capabilities"] {
  const capabilities = optionalObject(payload, "capabilities");
  if (payload.iotEdge !== undefined) {
    if (capabilities) throw new EnrollmentRequestError("give either iotEdge or capabilities, not both");
    if (typeof payload.iotEdge !== "boolean")
      throw new EnrollmentRequestError("iotEdge must be true or false");
    return { iotEdge: payload.iotEdge };
  }
  if (!capabilities) return undefined;
  if (typeof capabilities.iotEdge !== "boolean") {
    throw new EnrollmentRequestError("capabilities.iotEdge must be true or false");
  }
  return { iotEdge: capabilities.iotEdge };
}

function oneOf<T extends string>(
  payload: Record<string, unknown>,
  field: string,
  allowed: readonly string[],
): T | undefined {
  const value = optionalString(payload, field);
  if (value !== undefined && !allowed.includes(value)) {
    throw new EnrollmentRequestError(`${field} must be one of ${allowed.join(", ")}`);
  }
  return value as T | undefined;
}

/**
 * The individual enrollment msg.payload describes. Throws EnrollmentRequestError naming the problem; the
 * text never repeats a key or certificate.
 */
export function enrollmentOf(payload: unknown): IndividualEnrollment {
  if (!isObject(payload)) {
    throw new EnrollmentRequestError(
      "msg.payload must be an object describing the enrollment (or an array of them)",
    );
  }
  const unknown = Object.keys(payload).filter(
    (field) => !(ENROLLMENT_FIELDS as readonly string[]).includes(field) && !RETURNED_FIELDS.includes(field),
  );
  if (unknown.length > 0) {
    throw new EnrollmentRequestError(
      `unknown field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (known: ${ENROLLMENT_FIELDS.join(", ")})`,
    );
  }
  const registrationId = optionalString(payload, "registrationId");
  if (!registrationId) throw new EnrollmentRequestError("registrationId is missing");

  const enrollment: IndividualEnrollment = { registrationId, attestation: attestationOf(payload) };
  const deviceId = optionalString(payload, "deviceId");
  if (deviceId) enrollment.deviceId = deviceId;
  const iotHubHostName = optionalString(payload, "iotHubHostName");
  if (iotHubHostName) enrollment.iotHubHostName = iotHubHostName;
  if (payload.iotHubs !== undefined) {
    if (!Array.isArray(payload.iotHubs) || payload.iotHubs.some((hub) => typeof hub !== "string")) {
      throw new EnrollmentRequestError("iotHubs must be an array of IoT hub host names");
    }
    enrollment.iotHubs = payload.iotHubs as string[];
  }
  const initialTwin = initialTwinOf(payload);
  if (initialTwin) enrollment.initialTwin = initialTwin;
  const provisioningStatus = oneOf<ProvisioningStatus>(payload, "provisioningStatus", PROVISIONING_STATUSES);
  if (provisioningStatus) enrollment.provisioningStatus = provisioningStatus;
  const allocationPolicy = oneOf<AllocationPolicy>(payload, "allocationPolicy", ALLOCATION_POLICIES);
  if (allocationPolicy) enrollment.allocationPolicy = allocationPolicy;
  const reprovision = optionalObject(payload, "reprovisionPolicy");
  if (reprovision) {
    if (
      typeof reprovision.updateHubAssignment !== "boolean" ||
      typeof reprovision.migrateDeviceData !== "boolean"
    ) {
      throw new EnrollmentRequestError(
        "reprovisionPolicy needs updateHubAssignment and migrateDeviceData, each true or false",
      );
    }
    enrollment.reprovisionPolicy = {
      updateHubAssignment: reprovision.updateHubAssignment,
      migrateDeviceData: reprovision.migrateDeviceData,
    };
  }
  const capabilities = capabilitiesOf(payload);
  if (capabilities) enrollment.capabilities = capabilities;
  const custom = optionalObject(payload, "customAllocationDefinition");
  if (custom)
    enrollment.customAllocationDefinition = custom as IndividualEnrollment["customAllocationDefinition"];
  if (enrollment.allocationPolicy === "custom" && !enrollment.customAllocationDefinition) {
    throw new EnrollmentRequestError('allocationPolicy "custom" needs customAllocationDefinition');
  }
  const etag = optionalString(payload, "etag");
  if (etag) enrollment.etag = etag;
  return enrollment;
}

/** The registration id (and etag) a get or delete names: a string, or an object with registrationId. */
export function enrollmentIdOf(payload: unknown): { registrationId: string; etag?: string } {
  if (typeof payload === "string" && payload.trim() !== "") return { registrationId: payload.trim() };
  if (
    isObject(payload) &&
    typeof payload.registrationId === "string" &&
    payload.registrationId.trim() !== ""
  ) {
    const etag =
      typeof payload.etag === "string" && payload.etag.trim() !== "" ? payload.etag.trim() : undefined;
    return { registrationId: payload.registrationId.trim(), ...(etag ? { etag } : {}) };
  }
  throw new EnrollmentRequestError(
    "msg.payload must be the registration id, or an object with registrationId",
  );
}
