// What the web page shows, as JSON: read straight from the hub's registry and service and from the DPS
// enrollment store (no copy of their state or logic here). Secrets stay out: enrollment and device keys are
// never part of a view, only which kind of attestation or authentication is used.
import type { EnrollmentStore } from "../dps/enrollment-store.js";
import type { AttestationMechanism, EnrollmentCommon } from "../dps/types.js";
import type { DeviceStatus, HubDeviceRecord, HubRegistry, HubService, TwinDocument } from "../hub/types.js";
import { telemetryJson, type TelemetryJson } from "../service-api/telemetry-json.js";

export interface WebUiBackend {
  registry: HubRegistry;
  service: HubService;
  enrollments: EnrollmentStore;
  /** The hub the page shows. */
  hubHostName: string;
}

export type AttestationKind = AttestationMechanism["type"];

/** The DPS enrollment a device was assigned through, when DPS assigned it. */
export interface EnrollmentRef {
  kind: "individual" | "group";
  /** registrationId of an individual enrollment, enrollmentGroupId of a group. */
  id: string;
  registrationId: string;
}

export interface DeviceView {
  deviceId: string;
  status: DeviceStatus;
  connected: boolean;
  /** How the device authenticates to the hub. */
  authentication: HubDeviceRecord["authentication"]["type"];
  /** How it attested to DPS (tpm, symmetricKey, x509), when it came through DPS. */
  attestation?: AttestationKind;
  enrollment?: EnrollmentRef;
  modelId?: string;
  lastTelemetryUtc?: string;
}

export interface EnrollmentView {
  registrationId: string;
  deviceId?: string;
  attestation: AttestationKind;
  provisioningStatus?: string;
  iotHubHostName?: string;
  allocationPolicy?: string;
  initialTwin?: EnrollmentCommon["initialTwin"];
  registration?: RegistrationView;
  lastUpdatedDateTimeUtc?: string;
}

export interface EnrollmentGroupView {
  enrollmentGroupId: string;
  attestation: AttestationKind;
  provisioningStatus?: string;
  iotHubHostName?: string;
  allocationPolicy?: string;
  initialTwin?: EnrollmentCommon["initialTwin"];
  registrations: RegistrationView[];
  lastUpdatedDateTimeUtc?: string;
}

export interface RegistrationView {
  registrationId: string;
  deviceId?: string;
  status: string;
  assignedHub?: string;
  lastUpdatedDateTimeUtc?: string;
  errorMessage?: string;
}

export interface DeviceDetailView {
  device: DeviceView;
  twin: TwinDocument;
  telemetry: TelemetryJson[];
}

const sameHub = (a: string | undefined, b: string): boolean => a?.toLowerCase() === b.toLowerCase();

/** Which enrollment each device of the hub was assigned through, keyed by device id. */
function assignmentsByDevice(
  backend: WebUiBackend,
): Map<string, { ref: EnrollmentRef; attestation?: AttestationKind }> {
  const found = new Map<string, { ref: EnrollmentRef; attestation?: AttestationKind }>();
  for (const state of backend.enrollments.listRegistrationStates()) {
    if (state.status !== "assigned" || !state.deviceId || !sameHub(state.assignedHub, backend.hubHostName))
      continue;
    const groupId = backend.enrollments.getRegistrationGroupId(state.registrationId);
    if (groupId !== undefined) {
      const group = backend.enrollments.getEnrollmentGroup(groupId);
      found.set(state.deviceId, {
        ref: { kind: "group", id: group?.enrollmentGroupId ?? groupId, registrationId: state.registrationId },
        ...(group ? { attestation: group.attestation.type } : {}),
      });
    } else {
      const enrollment = backend.enrollments.getIndividualEnrollment(state.registrationId);
      found.set(state.deviceId, {
        ref: {
          kind: "individual",
          id: enrollment?.registrationId ?? state.registrationId,
          registrationId: state.registrationId,
        },
        ...(enrollment ? { attestation: enrollment.attestation.type } : {}),
      });
    }
  }
  return found;
}

function deviceView(
  backend: WebUiBackend,
  device: HubDeviceRecord,
  assignment: { ref: EnrollmentRef; attestation?: AttestationKind } | undefined,
): DeviceView {
  const last = backend.service.recentTelemetry(backend.hubHostName, device.deviceId, 1)[0];
  return {
    deviceId: device.deviceId,
    status: device.status,
    connected: backend.service.isConnected(backend.hubHostName, device.deviceId),
    authentication: device.authentication.type,
    ...(assignment?.attestation ? { attestation: assignment.attestation } : {}),
    ...(assignment ? { enrollment: assignment.ref } : {}),
    ...(device.modelId ? { modelId: device.modelId } : {}),
    ...(last ? { lastTelemetryUtc: last.enqueuedTimeUtc } : {}),
  };
}

export function listDeviceViews(backend: WebUiBackend): DeviceView[] {
  const assignments = assignmentsByDevice(backend);
  return backend.registry
    .listDevices(backend.hubHostName)
    .map((device) => deviceView(backend, device, assignments.get(device.deviceId)))
    .sort((a, b) => a.deviceId.localeCompare(b.deviceId));
}

/** undefined when the hub has no such device. */
export function deviceDetailView(
  backend: WebUiBackend,
  deviceId: string,
  telemetryLimit: number,
): DeviceDetailView | undefined {
  const device = backend.registry.getDevice(backend.hubHostName, deviceId);
  const twin = backend.service.getTwin(backend.hubHostName, deviceId);
  if (!device || !twin) return undefined;
  return {
    device: deviceView(backend, device, assignmentsByDevice(backend).get(device.deviceId)),
    twin,
    telemetry: recentTelemetryViews(backend, deviceId, telemetryLimit),
  };
}

/** Newest first, as the page lists them. */
export function recentTelemetryViews(
  backend: WebUiBackend,
  deviceId: string,
  limit: number,
): TelemetryJson[] {
  return backend.service.recentTelemetry(backend.hubHostName, deviceId, limit).map(telemetryJson).reverse();
}

function registrationView(
  state: ReturnType<EnrollmentStore["listRegistrationStates"]>[number],
): RegistrationView {
  return {
    registrationId: state.registrationId,
    status: state.status,
    ...(state.deviceId ? { deviceId: state.deviceId } : {}),
    ...(state.assignedHub ? { assignedHub: state.assignedHub } : {}),
    ...(state.lastUpdatedDateTimeUtc ? { lastUpdatedDateTimeUtc: state.lastUpdatedDateTimeUtc } : {}),
    ...(state.errorMessage ? { errorMessage: state.errorMessage } : {}),
  };
}

/** The fields both enrollment kinds show; keys and certificates are left out on purpose. */
function commonView(enrollment: EnrollmentCommon) {
  return {
    attestation: enrollment.attestation.type,
    ...(enrollment.provisioningStatus ? { provisioningStatus: enrollment.provisioningStatus } : {}),
    ...(enrollment.iotHubHostName ? { iotHubHostName: enrollment.iotHubHostName } : {}),
    ...(enrollment.allocationPolicy ? { allocationPolicy: enrollment.allocationPolicy } : {}),
    ...(enrollment.initialTwin ? { initialTwin: enrollment.initialTwin } : {}),
    ...(enrollment.lastUpdatedDateTimeUtc
      ? { lastUpdatedDateTimeUtc: enrollment.lastUpdatedDateTimeUtc }
      : {}),
  };
}

export function enrollmentsView(backend: WebUiBackend): {
  individual: EnrollmentView[];
  groups: EnrollmentGroupView[];
} {
  const byId = (a: string, b: string) => a.localeCompare(b);
  const individual = backend.enrollments
    .listIndividualEnrollments()
    .map((enrollment): EnrollmentView => ({
      registrationId: enrollment.registrationId,
      ...(enrollment.deviceId ? { deviceId: enrollment.deviceId } : {}),
      ...commonView(enrollment),
      ...(enrollment.registrationState
        ? { registration: registrationView(enrollment.registrationState) }
        : {}),
    }))
    .sort((a, b) => byId(a.registrationId, b.registrationId));
  const groups = backend.enrollments
    .listEnrollmentGroups()
    .map((group): EnrollmentGroupView => ({
      enrollmentGroupId: group.enrollmentGroupId,
      ...commonView(group),
      registrations: backend.enrollments
        .listRegistrationStates(group.enrollmentGroupId)
        .map(registrationView)
        .sort((a, b) => byId(a.registrationId, b.registrationId)),
    }))
    .sort((a, b) => byId(a.enrollmentGroupId, b.enrollmentGroupId));
  return { individual, groups };
}
