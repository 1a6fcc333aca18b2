// Device-to-cloud messages that arrive over MQTT or HTTPS: the same size limit, refusal faults and record as
// the AMQP telemetry link (docs/hub-amqp-protocol.md §3, §6.3), with the message already mapped to AMQP's field
// names. MQTT and HTTPS have one way to refuse (connection closed, 429), so throttling and an exceeded quota both
// take it.
import type { EventEmitter } from "node:events";
import type { Message } from "rhea";
import type { DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import { emitSafely } from "./service-events.js";
import { MAX_TELEMETRY_BYTES, telemetryRecord, telemetrySize, type TelemetryLog } from "./telemetry.js";
import type { TelemetryRecord } from "./types.js";

export interface TelemetryIntakeParts {
  store: DeviceStore;
  telemetry: TelemetryLog;
  faults: FaultInjection;
  events: EventEmitter;
}

export type TelemetryIntakeResult =
  | { accepted: true; record: TelemetryRecord }
  | { accepted: false; reason: "too-large" | "throttled"; description: string };

export function takeTelemetry(
  message: Message,
  origin: { hubHostName: string; deviceId: string; authMethod: "sas" | "x509" },
  parts: TelemetryIntakeParts,
): TelemetryIntakeResult {
  const size = telemetrySize(message);
  if (size > MAX_TELEMETRY_BYTES) {
    return {
      accepted: false,
      reason: "too-large",
      description: `Message size ${size} bytes exceeds the limit of ${MAX_TELEMETRY_BYTES} bytes.`,
    };
  }
  const refusal = parts.faults.takeTelemetryRefusal();
  if (refusal) return { accepted: false, reason: "throttled", description: refusal.description };
  const record = telemetryRecord(message, {
    ...origin,
    generationId: parts.store.generationId(origin.hubHostName, origin.deviceId) ?? "0",
    enqueuedAt: new Date(),
  });
  parts.telemetry.add(record);
  emitSafely(parts.events, "telemetry", record);
  return { accepted: true, record };
}
