// Checks on the identity records the registry accepts (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-identity-registry, "Device identity
// properties"): device id charset and length, base64 keys, hex thumbprints.
import { HubServiceError } from "./errors.js";
import type { HubDeviceRecord } from "./types.js";

/** Up to 128 ASCII alphanumerics and - : . + % _ # * ? ! ( ) , = @ $ ' */
const DEVICE_ID = /^[A-Za-z0-9\-:.+%_#*?!(),=@$']{1,128}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const THUMBPRINT = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/;

export function isValidDeviceId(deviceId: string): boolean {
  return DEVICE_ID.test(deviceId);
}

/** Upper case without separators, the form Azure stores. */
export function normalizeThumbprint(thumbprint: string): string {
  return thumbprint.replace(/[:\s]/g, "").toUpperCase();
}

/** A validated copy of `device` with thumbprints normalised; throws HubServiceError 400 when invalid. */
export function normalizeDeviceRecord(device: HubDeviceRecord): HubDeviceRecord {
  const invalid = (message: string): HubServiceError => new HubServiceError(400, "ArgumentInvalid", message);
  if (!isValidDeviceId(device.deviceId))
    throw invalid(`Device id ${JSON.stringify(device.deviceId)} is invalid.`);
  if (!device.hubHostName) throw invalid("hubHostName is required.");
  if (device.status !== "enabled" && device.status !== "disabled")
    throw invalid("status must be enabled or disabled.");
  const auth = device.authentication;
  const copy: HubDeviceRecord = {
    hubHostName: device.hubHostName,
    deviceId: device.deviceId,
    status: device.status,
    authentication: auth,
    ...(device.modelId !== undefined ? { modelId: device.modelId } : {}),
    ...(device.capabilities?.iotEdge === true ? { capabilities: { iotEdge: true } } : {}),
  };
  switch (auth.type) {
    case "sas": {
      const { primaryKey, secondaryKey } = auth.symmetricKey;
      for (const key of [primaryKey, secondaryKey]) {
        if (key === undefined) continue;
        if (!BASE64.test(key) || Buffer.from(key, "base64").length < 16) {
          throw invalid("Symmetric keys must be base64 and at least 16 bytes long.");
        }
      }
      copy.authentication = {
        type: "sas",
        symmetricKey: { primaryKey, ...(secondaryKey !== undefined ? { secondaryKey } : {}) },
      };
      break;
    }
    case "selfSigned": {
      const primary = normalizeThumbprint(auth.x509Thumbprint.primaryThumbprint);
      const secondaryRaw = auth.x509Thumbprint.secondaryThumbprint;
      const secondary = secondaryRaw !== undefined ? normalizeThumbprint(secondaryRaw) : undefined;
      for (const thumbprint of [primary, secondary]) {
        if (thumbprint !== undefined && !THUMBPRINT.test(thumbprint)) {
          throw invalid("Thumbprints must be SHA-1 or SHA-256 in hex.");
        }
      }
      copy.authentication = {
        type: "selfSigned",
        x509Thumbprint: {
          primaryThumbprint: primary,
          ...(secondary !== undefined ? { secondaryThumbprint: secondary } : {}),
        },
      };
      break;
    }
    case "certificateAuthority":
      copy.authentication = { type: "certificateAuthority" };
      break;
    default:
      throw invalid("Unknown authentication type.");
  }
  return copy;
}
