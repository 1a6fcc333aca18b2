// How the service API shows a device-to-cloud message: the hub's record, with the body decoded for people
// (parsed JSON when it is JSON, text when it is UTF-8) and always the exact bytes in base64.
import type { TelemetryRecord } from "../hub/types.js";

export interface TelemetryJson {
  hubHostName: string;
  deviceId: string;
  enqueuedTimeUtc: string;
  properties: Record<string, string>;
  systemProperties: Record<string, string | undefined>;
  /** Parsed JSON, or the text, or null for binary bodies. */
  body: unknown;
  bodyBase64: string;
}

function decodeBody(body: Buffer): unknown {
  const text = body.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(body)) return null; // not UTF-8: binary
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function telemetryJson(record: TelemetryRecord): TelemetryJson {
  return {
    hubHostName: record.hubHostName,
    deviceId: record.deviceId,
    enqueuedTimeUtc: record.enqueuedTimeUtc,
    properties: record.properties,
    systemProperties: record.systemProperties,
    body: decodeBody(record.body),
    bodyBase64: record.body.toString("base64"),
  };
}
