// Custom allocation: DPS calls a webhook (an Azure Function in Azure) with the enrollment, the device's runtime
// context and the linked hubs; the webhook answers with the hub, optionally an initial twin and a payload for
// the device. Request/response shapes: "Use custom allocation policies" (Azure IoT DPS docs).
import type { InitialTwin } from "./types.js";

export interface CustomAllocationRequest {
  individualEnrollment?: unknown;
  enrollmentGroup?: unknown;
  deviceRuntimeContext: {
    registrationId: string;
    currentIotHubHostName?: string;
    currentDeviceId?: string;
    symmetricKey?: Record<string, never>;
    x509?: Record<string, unknown>;
    tpm?: Record<string, unknown>;
    payload?: unknown;
  };
  linkedHubs: string[];
}

export interface CustomAllocationResponse {
  iotHubHostName: string;
  initialTwin?: InitialTwin;
  payload?: unknown;
}

export class CustomAllocationError extends Error {
  override readonly name = "CustomAllocationError";
}

const WEBHOOK_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 256 * 1024;

/** Calls the webhook; rejects with CustomAllocationError carrying the message DPS shows the device. */
export async function callAllocationWebhook(
  webhookUrl: string,
  request: CustomAllocationRequest,
): Promise<CustomAllocationResponse> {
  let response: Response;
  try {
    response = await fetch(webhookUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
  } catch {
    throw new CustomAllocationError("Custom allocation failed: the webhook could not be reached");
  }
  const text = await response.text().catch(() => "");
  if (response.status !== 200) {
    throw new CustomAllocationError(`Custom allocation failed with status code: ${response.status}`);
  }
  if (text.length > MAX_RESPONSE_BYTES) {
    throw new CustomAllocationError("Custom allocation failed: the webhook response is too large");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CustomAllocationError("Custom allocation failed: the webhook response is not JSON");
  }
  const hub = (body as { iotHubHostName?: unknown })?.iotHubHostName;
  if (typeof hub !== "string" || hub.length === 0) {
    throw new CustomAllocationError("Custom allocation failed: the webhook response has no iotHubHostName");
  }
  return body as CustomAllocationResponse;
}
