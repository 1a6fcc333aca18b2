// The device's twin requests over MQTT (docs/hub-mqtt-protocol.md §4): the answer to a GET and to a reported
// patch, as a status, an optional JSON body and the new reported version.
import type { DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import { AzureErrorCode, type AzureErrorName } from "./errors.js";
import { TwinRuleViolation } from "./twin-rules.js";

export interface TwinAnswer {
  status: number;
  body?: unknown;
  /** The reported properties' version after a patch (204). */
  version?: number;
}

/** IoT Hub answers too many twin reads with 429 (ThrottlingError in the SDK, transient). */
export const TWIN_GET_THROTTLED = "Twin reads throttled: too many requests (fault injection).";

export function answerTwinGet(
  store: DeviceStore,
  faults: FaultInjection,
  hubHostName: string,
  deviceId: string,
): TwinAnswer {
  if (!store.get(hubHostName, deviceId)) return notFound(deviceId);
  if (faults.takeTwinGetThrottling()) {
    return {
      status: 429,
      body: azureError("ThrottlingException", TWIN_GET_THROTTLED),
    };
  }
  return { status: 200, body: store.deviceTwinView(hubHostName, deviceId) };
}

export function answerReportedPatch(
  store: DeviceStore,
  hubHostName: string,
  deviceId: string,
  payload: Buffer,
): TwinAnswer {
  if (!store.get(hubHostName, deviceId)) return notFound(deviceId);
  let patch: unknown;
  try {
    patch = JSON.parse(payload.toString("utf8")) as unknown;
  } catch {
    return { status: 400, body: azureError("ArgumentInvalid", "The reported patch is not valid JSON.") };
  }
  try {
    return { status: 204, version: store.patchReported(hubHostName, deviceId, patch) };
  } catch (error) {
    if (!(error instanceof TwinRuleViolation)) throw error;
    return { status: 400, body: azureError("ArgumentInvalid", error.message) };
  }
}

function notFound(deviceId: string): TwinAnswer {
  return { status: 404, body: azureError("DeviceNotFound", `Device ${deviceId} not found.`) };
}

/** The SDK fails a twin request whose answer body carries an errorCode. */
function azureError(name: AzureErrorName, message: string): Record<string, unknown> {
  return { errorCode: AzureErrorCode[name], message, timestampUtc: new Date().toISOString() };
}
