import { createHmac } from "node:crypto";

/**
 * The device key of a symmetric-key group enrollment member: base64(HMAC-SHA256(base64decode(groupKey),
 * registrationId)) (docs/dps-protocol.md §6.4). DPS derives the same key to check the device, and the device
 * uses it as its IoT Hub key afterwards.
 */
export function deriveDeviceKey(groupKey: string, registrationId: string): string {
  return createHmac("sha256", Buffer.from(groupKey, "base64"))
    .update(registrationId, "utf8")
    .digest("base64");
}
