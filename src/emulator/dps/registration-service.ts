// The transport-independent DPS: who a device is (symmetric key, X.509, TPM), the register -> assigning ->
// assigned/failed/disabled operation, hub allocation, reprovisioning, and the device upsert into the IoT hub.
// The AMQP, HTTPS and MQTT front ends only translate their wire formats to these calls.
import { randomBytes, randomUUID, type X509Certificate } from "node:crypto";
import { buildActivationBlob, InvalidTpmPublicError } from "../tpm-activation.js";
import { candidateHubs, chooseHub } from "./allocation.js";
import {
  certificateInfo,
  parseCertificate,
  chainLeadsTo,
  checkLeaf,
  deriveDeviceKey,
  leafMatchesEnrolled,
  thumbprints,
  verifyRegistrationToken,
} from "./credentials.js";
import {
  callAllocationWebhook,
  CustomAllocationError,
  type CustomAllocationRequest,
} from "./custom-allocation.js";
import type { EnrollmentStore } from "./enrollment-store.js";
import { DPS_ERROR, DpsError, unauthorized } from "./errors.js";
import type { DpsHubDeviceRecord, DpsHubs, DpsTwinSeed, LinkedHub } from "./hub-link.js";
import type {
  AllocationPolicy,
  DeviceRegistrationResult,
  EnrollmentGroup,
  IndividualEnrollment,
  InitialTwin,
  RegistrationOperationStatus,
  RegistrationSubstatus,
} from "./types.js";

/** A device whose credentials DPS accepted, with the enrollment that accepted it. */
export type DeviceIdentity =
  | {
      attestation: "symmetricKey";
      registrationId: string;
      enrollment: Enrollment;
      deviceKeys: { primaryKey: string; secondaryKey?: string };
    }
  | { attestation: "x509"; registrationId: string; enrollment: Enrollment; leaf: X509Certificate }
  | {
      attestation: "tpm";
      registrationId: string;
      enrollment: Enrollment;
      endorsementKey: Buffer;
      storageRootKey: Buffer;
    };

export type Enrollment =
  { kind: "individual"; value: IndividualEnrollment } | { kind: "group"; value: EnrollmentGroup };

/** A TPM challenge: the activation blob for the device and the session key its SAS token must be signed with. */
export interface TpmChallenge {
  activationBlob: Buffer;
  sessionKey: Buffer;
}

export interface RegistrationServiceOptions {
  idScope: string;
  store: EnrollmentStore;
  hubs: DpsHubs;
  /** Policy of enrollments that set none (the DPS instance's default). Default "hashed". */
  defaultAllocationPolicy?: Exclude<AllocationPolicy, "custom">;
  /** Seconds the device is told to wait between polls. Default 1. */
  retryAfterSeconds?: number;
  /** Polls answered "assigning" before the result is given (real DPS: at least one). Default 0. */
  extraAssigningPolls?: number;
  /** Echo the device's payload back in registrationState.payload when no webhook gave one. Default false. */
  echoDevicePayload?: boolean;
}

interface Operation {
  registrationId: string;
  createdAt: number;
  pollsBeforeResult: number;
  result?: RegistrationOperationStatus;
}

// Operations are kept long enough for any client to poll them; older ones are dropped.
const OPERATION_TTL_MS = 10 * 60 * 1000;
const MAX_OPERATIONS = 10_000;
const DEFAULT_REPROVISION = { updateHubAssignment: true, migrateDeviceData: true };

export class RegistrationService {
  readonly idScope: string;
  readonly retryAfterSeconds: number;
  private readonly store: EnrollmentStore;
  private readonly hubs: DpsHubs;
  private readonly operations = new Map<string, Operation>();
  private throttleBudget = 0;
  private closed = false;

  constructor(private readonly options: RegistrationServiceOptions) {
    this.idScope = options.idScope;
    this.store = options.store;
    this.hubs = options.hubs;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 1;
  }

  /** After close, assignments still in flight (a slow webhook) write nothing. */
  close(): void {
    this.closed = true;
  }

  /** Fault hook: the next `count` register/poll requests are answered as throttled. */
  throttleNext(count: number): void {
    this.throttleBudget = Math.max(0, Math.floor(count));
  }

  /** True (and one throttle used up) when this request must be answered as throttled. */
  takeThrottle(): boolean {
    if (this.throttleBudget <= 0) return false;
    this.throttleBudget--;
    return true;
  }

  isOwnScope(idScope: string): boolean {
    return idScope.toLowerCase() === this.idScope.toLowerCase();
  }

  // ---- authentication ----

  /** Symmetric key attestation: individual enrollment first, then every enabled or disabled SK group. */
  authenticateSymmetricKey(registrationId: string, token: string | undefined): DeviceIdentity {
    const individual = this.store.getIndividualEnrollment(registrationId);
    if (individual) {
      const keys = individual.attestation.symmetricKey;
      if (individual.attestation.type !== "symmetricKey" || !keys) {
        throw unauthorized("the enrollment does not use symmetric key attestation");
      }
      const checked = this.verifyToken(token, registrationId, [keys.primaryKey, keys.secondaryKey]);
      if (!checked.ok) throw checked.error;
      return {
        attestation: "symmetricKey",
        registrationId,
        enrollment: { kind: "individual", value: individual },
        deviceKeys: {
          primaryKey: keys.primaryKey,
          ...(keys.secondaryKey ? { secondaryKey: keys.secondaryKey } : {}),
        },
      };
    }
    let lastError: DpsError = unauthorized("no enrollment for this registration id");
    for (const group of this.store.listEnrollmentGroups()) {
      const keys = group.attestation.symmetricKey;
      if (group.attestation.type !== "symmetricKey" || !keys) continue;
      const derived = [keys.primaryKey, keys.secondaryKey].map((k) =>
        k ? deriveDeviceKey(k, registrationId) : undefined,
      );
      const checked = this.verifyToken(token, registrationId, derived);
      if (checked.ok) {
        return {
          attestation: "symmetricKey",
          registrationId,
          enrollment: { kind: "group", value: group },
          deviceKeys: { primaryKey: derived[0]!, ...(derived[1] ? { secondaryKey: derived[1] } : {}) },
        };
      }
      lastError = checked.error;
    }
    throw lastError;
  }

  /** X.509 attestation from the TLS client certificate chain (leaf first). */
  authenticateX509(registrationId: string, chain: readonly X509Certificate[]): DeviceIdentity {
    const leafCheck = checkLeaf(chain, registrationId);
    if (!leafCheck.ok) throw leafCheck.error;
    const leaf = leafCheck.value;
    const individual = this.store.getIndividualEnrollment(registrationId);
    if (individual) {
      const certs = individual.attestation.x509?.clientCertificates;
      const enrolled = [certs?.primary, certs?.secondary].filter((c) => c !== undefined);
      if (individual.attestation.type !== "x509" || !leafMatchesEnrolled(leaf, enrolled)) {
        throw unauthorized("the client certificate is not the enrolled certificate");
      }
      return {
        attestation: "x509",
        registrationId,
        enrollment: { kind: "individual", value: individual },
        leaf,
      };
    }
    for (const group of this.store.listEnrollmentGroups()) {
      if (group.attestation.type !== "x509") continue;
      if (chainLeadsTo(chain, this.groupSigningCertificates(group))) {
        return { attestation: "x509", registrationId, enrollment: { kind: "group", value: group }, leaf };
      }
    }
    throw unauthorized("the client certificate does not chain to an enrolled certificate");
  }

  /**
   * First half of TPM attestation: the device's EK must be the enrolled one. The returned activation blob
   * wraps a fresh session key only that TPM can import; the device proves possession by signing with it.
   */
  issueTpmChallenge(registrationId: string, endorsementKey: Buffer, storageRootKey: Buffer): TpmChallenge {
    this.tpmEnrollment(registrationId, endorsementKey);
    const sessionKey = randomBytes(32);
    try {
      return { activationBlob: buildActivationBlob(endorsementKey, storageRootKey, sessionKey), sessionKey };
    } catch (error) {
      if (error instanceof InvalidTpmPublicError)
        throw new DpsError(400, DPS_ERROR.badRequest, error.message);
      throw error;
    }
  }

  /** Second half: the SAS token signed in the TPM with the session key. */
  authenticateTpm(
    registrationId: string,
    token: string | undefined,
    challenge: { sessionKey: Buffer; endorsementKey: Buffer; storageRootKey: Buffer },
  ): DeviceIdentity {
    const enrollment = this.tpmEnrollment(registrationId, challenge.endorsementKey);
    const checked = verifyRegistrationToken(token, this.idScope, registrationId, [challenge.sessionKey]);
    if (!checked.ok) throw checked.error;
    return {
      attestation: "tpm",
      registrationId,
      enrollment: { kind: "individual", value: enrollment },
      endorsementKey: challenge.endorsementKey,
      storageRootKey: challenge.storageRootKey,
    };
  }

  // ---- registration operations ----

  /**
   * Starts a registration. `body` is the DeviceRegistration JSON; its registrationId must be the
   * authenticated one. Answers "assigning" with an operation id; the assignment runs in the background.
   */
  register(identity: DeviceIdentity, body: unknown): RegistrationOperationStatus {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new DpsError(400, DPS_ERROR.badRequest, "the request body must be a DeviceRegistration object");
    }
    const request = body as { registrationId?: unknown; payload?: unknown };
    if (
      request.registrationId !== undefined &&
      (typeof request.registrationId !== "string" ||
        request.registrationId.toLowerCase() !== identity.registrationId.toLowerCase())
    ) {
      throw new DpsError(
        400,
        DPS_ERROR.invalidRegistrationId,
        "registrationId does not match the authenticated device",
      );
    }
    this.sweepOperations();
    const operationId = `4.${randomBytes(8).toString("hex")}.${randomUUID()}`;
    const operation: Operation = {
      registrationId: identity.registrationId,
      createdAt: Date.now(),
      pollsBeforeResult: this.options.extraAssigningPolls ?? 0,
    };
    this.operations.set(operationId, operation);
    this.assign(identity, request.payload).then(
      (registrationState) => {
        operation.result = { operationId, status: registrationState.status, registrationState };
      },
      (error: unknown) => {
        operation.result = {
          operationId,
          status: "failed",
          registrationState: {
            registrationId: identity.registrationId,
            status: "failed",
            errorCode: DPS_ERROR.internal,
            errorMessage:
              error instanceof DpsError ? error.message : "internal error while assigning the device",
            lastUpdatedDateTimeUtc: new Date().toISOString(),
          },
        };
      },
    );
    return { operationId, status: "assigning" };
  }

  /** Operation status for the device that started it. */
  operationStatus(identity: DeviceIdentity, operationId: string | undefined): RegistrationOperationStatus {
    const operation = operationId ? this.operations.get(operationId) : undefined;
    if (
      !operationId ||
      !operation ||
      operation.registrationId.toLowerCase() !== identity.registrationId.toLowerCase()
    ) {
      throw new DpsError(404, DPS_ERROR.operationNotFound, "operation not found");
    }
    if (!operation.result || operation.pollsBeforeResult > 0) {
      operation.pollsBeforeResult = Math.max(0, operation.pollsBeforeResult - 1);
      return { operationId, status: "assigning" };
    }
    return operation.result;
  }

  // ---- internals ----

  private verifyToken(token: string | undefined, registrationId: string, keys: (string | undefined)[]) {
    const buffers = keys.filter((k): k is string => !!k).map((k) => Buffer.from(k, "base64"));
    return verifyRegistrationToken(token, this.idScope, registrationId, buffers);
  }

  private tpmEnrollment(registrationId: string, endorsementKey: Buffer): IndividualEnrollment {
    const enrollment = this.store.getIndividualEnrollment(registrationId);
    const enrolledEk = enrollment?.attestation.tpm?.endorsementKey;
    if (!enrollment || enrollment.attestation.type !== "tpm" || !enrolledEk) {
      throw unauthorized("no TPM enrollment for this registration id");
    }
    if (!Buffer.from(enrolledEk, "base64").equals(endorsementKey)) {
      throw unauthorized("the endorsement key is not the enrolled one");
    }
    return enrollment;
  }

  private groupSigningCertificates(group: EnrollmentGroup): X509Certificate[] {
    const x509 = group.attestation.x509;
    const pems = [
      x509?.signingCertificates?.primary?.certificate,
      x509?.signingCertificates?.secondary?.certificate,
    ];
    const out: X509Certificate[] = [];
    for (const pem of pems) {
      if (!pem) continue;
      try {
        out.push(parseCertificate(pem));
      } catch {
        // validated when stored; an unreadable one simply matches nothing
      }
    }
    return out;
  }

  private sweepOperations(): void {
    const oldest = Date.now() - OPERATION_TTL_MS;
    for (const [id, op] of this.operations) {
      if (op.createdAt < oldest || this.operations.size >= MAX_OPERATIONS) this.operations.delete(id);
      else break; // Map keeps insertion order: the rest are newer
    }
  }

  /** Decides the hub, updates the hub registry and records the registration state. */
  private async assign(identity: DeviceIdentity, devicePayload: unknown): Promise<DeviceRegistrationResult> {
    const { registrationId } = identity;
    const enrollment = identity.enrollment.value;
    const groupId =
      identity.enrollment.kind === "group" ? identity.enrollment.value.enrollmentGroupId : undefined;
    const now = new Date().toISOString();
    const previous = this.store.getRegistrationState(registrationId);
    const createdDateTimeUtc = previous?.createdDateTimeUtc ?? now;

    if (enrollment.provisioningStatus === "disabled") {
      return { registrationId, createdDateTimeUtc, status: "disabled", lastUpdatedDateTimeUtc: now };
    }

    const deviceId =
      (identity.enrollment.kind === "individual" ? identity.enrollment.value.deviceId : undefined) ??
      registrationId;
    const previousHub = previous?.status === "assigned" ? previous.assignedHub : undefined;
    const reprovision = enrollment.reprovisionPolicy ?? DEFAULT_REPROVISION;

    let hubHostName: string | undefined;
    let initialTwin: InitialTwin | undefined = enrollment.initialTwin;
    let resultPayload: unknown;
    if (previousHub && !reprovision.updateHubAssignment) {
      hubHostName = previousHub; // "never re-provision": the device stays where it is
    } else {
      const candidates = candidateHubs(this.hubs.linkedHubs, enrollment);
      const policy = enrollment.allocationPolicy ?? this.options.defaultAllocationPolicy ?? "hashed";
      if (policy === "custom") {
        try {
          const decision = await callAllocationWebhook(
            enrollment.customAllocationDefinition!.webhookUrl,
            this.customAllocationRequest(
              identity,
              candidates,
              devicePayload,
              previous?.assignedHub,
              previous?.deviceId,
            ),
          );
          hubHostName = candidates.find(
            (h) => h.hostName.toLowerCase() === decision.iotHubHostName.toLowerCase(),
          )?.hostName;
          if (!hubHostName) {
            return this.failed(
              identity,
              createdDateTimeUtc,
              DPS_ERROR.customAllocationFailed,
              "Custom allocation returned an IoT hub that is not linked",
            );
          }
          if (decision.initialTwin) initialTwin = decision.initialTwin;
          resultPayload = decision.payload;
        } catch (error) {
          const message = error instanceof CustomAllocationError ? error.message : "Custom allocation failed";
          return this.failed(identity, createdDateTimeUtc, DPS_ERROR.customAllocationFailed, message);
        }
      } else {
        hubHostName = chooseHub(policy, candidates, registrationId)?.hostName;
      }
    }
    if (this.closed) throw new DpsError(503, DPS_ERROR.internal, "the DPS emulator is stopping");
    if (!hubHostName) {
      return this.failed(
        identity,
        createdDateTimeUtc,
        DPS_ERROR.badRequest,
        "no linked IoT hub is available for this enrollment",
      );
    }

    // What happens to the device's twin: the initial twin on first assignment or on reset, the old twin
    // when migrating to another hub, untouched otherwise.
    const previousDeviceId = previous?.deviceId ?? deviceId;
    // Hub host names compare without case (DNS), device ids with it (IoT Hub's device ids are case-sensitive).
    const moved =
      previousHub !== undefined &&
      (previousHub.toLowerCase() !== hubHostName.toLowerCase() || previousDeviceId !== deviceId);
    let substatus: RegistrationSubstatus = "initialAssignment";
    let twin: DpsTwinSeed | undefined;
    if (!previousHub) {
      twin = seedFromInitialTwin(initialTwin);
    } else if (!reprovision.updateHubAssignment) {
      substatus = "initialAssignment";
    } else if (reprovision.migrateDeviceData) {
      substatus = "deviceDataMigrated";
      if (moved) {
        const oldTwin = this.hubs.service?.getTwin(previousHub, previousDeviceId);
        twin = oldTwin
          ? { tags: oldTwin.tags, properties: { desired: withoutMetadata(oldTwin.properties.desired) } }
          : seedFromInitialTwin(initialTwin);
      }
    } else {
      substatus = "deviceDataReset";
      twin = seedFromInitialTwin(initialTwin) ?? { tags: {}, properties: { desired: {} } };
    }
    // A device deleted from its hub since is created again, with the initial twin like a new one.
    if (!twin && !this.hubs.registry.getDevice(hubHostName, deviceId))
      twin = seedFromInitialTwin(initialTwin);

    // TPM: the device's hub key travels to it inside a fresh activation blob; built before anything is
    // written so a failure leaves the hub as it was.
    const tpmHubKey = identity.attestation === "tpm" ? randomBytes(32) : undefined;
    const tpmBlob =
      identity.attestation === "tpm"
        ? buildActivationBlob(identity.endorsementKey, identity.storageRootKey, tpmHubKey!)
        : undefined;
    const existingDevice = this.hubs.registry.getDevice(hubHostName, deviceId);
    const modelId = modelIdOf(devicePayload);
    const device: DpsHubDeviceRecord = {
      hubHostName,
      deviceId,
      // A device an operator disabled in the hub stays disabled when it provisions again.
      status: existingDevice?.status ?? "enabled",
      authentication: tpmHubKey
        ? { type: "sas", symmetricKey: { primaryKey: tpmHubKey.toString("base64") } }
        : this.hubAuthentication(identity),
      ...(modelId ? { modelId } : {}),
    };
    this.hubs.registry.upsertDevice(device, twin);
    if (moved && reprovision.updateHubAssignment)
      this.hubs.registry.deleteDevice(previousHub, previousDeviceId);

    const stored = this.store.putRegistrationState(
      {
        registrationId,
        createdDateTimeUtc,
        assignedHub: hubHostName,
        deviceId,
        status: "assigned",
        substatus,
        lastUpdatedDateTimeUtc: new Date().toISOString(),
        ...(resultPayload !== undefined ? { payload: resultPayload } : {}),
      },
      groupId,
    );
    const result: DeviceRegistrationResult = { ...stored };
    if (resultPayload === undefined && devicePayload !== undefined && this.options.echoDevicePayload) {
      result.payload = devicePayload;
    }
    switch (identity.attestation) {
      case "symmetricKey":
        result.symmetricKey = groupId ? { enrollmentGroupId: groupId } : {};
        break;
      case "x509":
        result.x509 = {
          ...(groupId ? { enrollmentGroupId: groupId } : {}),
          certificateInfo: certificateInfo(identity.leaf),
        };
        break;
      case "tpm":
        result.tpm = { authenticationKey: tpmBlob!.toString("base64") };
        break;
    }
    return result;
  }

  /** The device's IoT Hub credentials: SK keys, the X.509 thumbprint or CA (TPM: see assign). */
  private hubAuthentication(identity: DeviceIdentity): DpsHubDeviceRecord["authentication"] {
    switch (identity.attestation) {
      case "symmetricKey":
        return { type: "sas", symmetricKey: identity.deviceKeys };
      case "x509":
        if (identity.enrollment.kind === "group") return { type: "certificateAuthority" };
        return { type: "selfSigned", x509Thumbprint: { primaryThumbprint: thumbprints(identity.leaf).sha1 } };
      case "tpm":
        throw new Error("TPM hub keys are issued with the activation blob");
    }
  }

  private failed(
    identity: DeviceIdentity,
    createdDateTimeUtc: string,
    errorCode: number,
    errorMessage: string,
  ): DeviceRegistrationResult {
    if (this.closed) throw new DpsError(503, DPS_ERROR.internal, "the DPS emulator is stopping");
    const groupId =
      identity.enrollment.kind === "group" ? identity.enrollment.value.enrollmentGroupId : undefined;
    const previous = this.store.getRegistrationState(identity.registrationId);
    const state = {
      registrationId: identity.registrationId,
      createdDateTimeUtc,
      status: "failed" as const,
      errorCode,
      errorMessage,
      lastUpdatedDateTimeUtc: new Date().toISOString(),
    };
    // A failed re-registration leaves a working assignment in place (the device keeps its hub).
    if (previous?.status === "assigned") return { ...state, etag: previous.etag };
    return this.store.putRegistrationState(state, groupId);
  }

  private customAllocationRequest(
    identity: DeviceIdentity,
    candidates: LinkedHub[],
    payload: unknown,
    currentHub: string | undefined,
    currentDeviceId: string | undefined,
  ): CustomAllocationRequest {
    const enrollment = withoutSecrets(identity.enrollment.value);
    return {
      ...(identity.enrollment.kind === "group"
        ? { enrollmentGroup: enrollment }
        : { individualEnrollment: enrollment }),
      deviceRuntimeContext: {
        registrationId: identity.registrationId,
        ...(currentHub ? { currentIotHubHostName: currentHub } : {}),
        ...(currentDeviceId ? { currentDeviceId } : {}),
        ...(identity.attestation === "symmetricKey" ? { symmetricKey: {} } : {}),
        ...(identity.attestation === "x509"
          ? { x509: { certificateInfo: certificateInfo(identity.leaf) } }
          : {}),
        ...(identity.attestation === "tpm" ? { tpm: {} } : {}),
        ...(payload !== undefined ? { payload } : {}),
      },
      linkedHubs: candidates.map((h) => h.hostName),
    };
  }
}

function seedFromInitialTwin(twin: InitialTwin | undefined): DpsTwinSeed | undefined {
  if (!twin) return undefined;
  return {
    tags: withoutMetadata(twin.tags ?? {}),
    properties: { desired: withoutMetadata(twin.properties?.desired ?? {}) },
  };
}

/** Twin collections in the service API may carry $version/$metadata/count; the hub takes plain properties. */
function withoutMetadata(collection: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(collection)) {
    if (!name.startsWith("$") && !(name === "count" && typeof value === "number")) out[name] = value;
  }
  return out;
}

/** IoT Plug and Play: devices announce their model id as payload.modelId when registering. */
function modelIdOf(payload: unknown): string | undefined {
  const modelId = (payload as { modelId?: unknown } | undefined)?.modelId;
  return typeof modelId === "string" && modelId.startsWith("dtmi:") ? modelId : undefined;
}

function withoutSecrets<T extends { attestation: { symmetricKey?: unknown } }>(enrollment: T): T {
  const copy = structuredClone(enrollment);
  if (copy.attestation.symmetricKey) copy.attestation = { ...copy.attestation, symmetricKey: undefined };
  return copy;
}
