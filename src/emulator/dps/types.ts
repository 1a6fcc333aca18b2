// The DPS service API's JSON shapes (Azure "Device Provisioning Service" REST API, as the
// azure-iot-provisioning-service SDK types them), so a REST front end can serve stored objects as they are.

export type ProvisioningStatus = "enabled" | "disabled";
export type AllocationPolicy = "hashed" | "geoLatency" | "static" | "custom";
export type RegistrationStatus = "unassigned" | "assigning" | "assigned" | "failed" | "disabled";
export type RegistrationSubstatus =
  "initialAssignment" | "deviceDataMigrated" | "deviceDataReset" | "reprovisionedToInitialAssignment";

export interface X509CertificateWithInfo {
  /** PEM (or base64 DER) of the certificate. */
  certificate?: string;
  info?: Record<string, unknown>;
}
export interface X509Certificates {
  primary?: X509CertificateWithInfo;
  secondary?: X509CertificateWithInfo;
}
export interface X509Attestation {
  clientCertificates?: X509Certificates;
  signingCertificates?: X509Certificates;
  caReferences?: { primary?: string; secondary?: string };
}
export interface SymmetricKeyAttestation {
  /** base64 */
  primaryKey: string;
  secondaryKey?: string;
}
export interface TpmAttestation {
  /** base64 TPM2B_PUBLIC of the endorsement key */
  endorsementKey: string;
  storageRootKey?: string;
}
export interface AttestationMechanism {
  type: "tpm" | "x509" | "symmetricKey";
  tpm?: TpmAttestation;
  x509?: X509Attestation;
  symmetricKey?: SymmetricKeyAttestation;
}

export interface InitialTwin {
  tags?: Record<string, unknown>;
  properties?: { desired?: Record<string, unknown> };
}

export interface ReprovisionPolicy {
  updateHubAssignment: boolean;
  migrateDeviceData: boolean;
}

export interface CustomAllocationDefinition {
  webhookUrl: string;
  apiVersion: string;
}

/** Fields individual enrollments and enrollment groups share. */
export interface EnrollmentCommon {
  attestation: AttestationMechanism;
  iotHubHostName?: string;
  initialTwin?: InitialTwin;
  etag?: string;
  provisioningStatus?: ProvisioningStatus;
  createdDateTimeUtc?: string;
  lastUpdatedDateTimeUtc?: string;
  capabilities?: { iotEdge: boolean };
  reprovisionPolicy?: ReprovisionPolicy;
  allocationPolicy?: AllocationPolicy;
  iotHubs?: string[];
  customAllocationDefinition?: CustomAllocationDefinition;
}

export interface IndividualEnrollment extends EnrollmentCommon {
  registrationId: string;
  deviceId?: string;
  /** Filled in when read (the service API embeds the registration state). */
  registrationState?: DeviceRegistrationState;
}

export interface EnrollmentGroup extends EnrollmentCommon {
  enrollmentGroupId: string;
}

export interface DeviceRegistrationState {
  registrationId: string;
  createdDateTimeUtc?: string;
  assignedHub?: string;
  deviceId?: string;
  status: RegistrationStatus;
  substatus?: RegistrationSubstatus;
  errorCode?: number;
  errorMessage?: string;
  lastUpdatedDateTimeUtc?: string;
  etag?: string;
  payload?: unknown;
}

/** What a device receives from register / operation status (RegistrationOperationStatus). */
export interface RegistrationOperationStatus {
  operationId: string;
  status: RegistrationStatus;
  registrationState?: DeviceRegistrationResult;
}

/** The device-side registration state (DeviceRegistrationResult). */
export interface DeviceRegistrationResult extends DeviceRegistrationState {
  symmetricKey?: { enrollmentGroupId?: string };
  x509?: { enrollmentGroupId?: string; certificateInfo?: Record<string, unknown> };
  tpm?: { authenticationKey: string };
}
