// The device's telemetry sender link: size limits, throttling, recording and acknowledging device-to-cloud
// messages (docs/hub-amqp-protocol.md §3).
import type { EventEmitter } from "node:events";
import type { Delivery, Message } from "rhea";
import { Condition, settle } from "./amqp-wire.js";
import type { ConnectionState } from "./device-connections.js";
import type { DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import type { LinkState } from "./link-state.js";
import { emitSafely } from "./service-events.js";
import { MAX_TELEMETRY_BYTES, telemetryRecord, telemetrySize, type TelemetryLog } from "./telemetry.js";
import type { TimerSet } from "./timer-set.js";

export class TelemetryReceiver {
  constructor(
    private readonly store: DeviceStore,
    private readonly telemetry: TelemetryLog,
    private readonly faults: FaultInjection,
    private readonly timers: TimerSet,
    private readonly events: EventEmitter,
  ) {}

  onTelemetry(state: ConnectionState, linkState: LinkState, delivery: Delivery, message: Message): void {
    const { hubHostName, deviceId } = linkState;
    const authorization = deviceId !== undefined ? state.authorizations.get(deviceId) : undefined;
    if (!hubHostName || !deviceId || !authorization) {
      settle(delivery, "reject", {
        condition: Condition.unauthorized,
        description: "The device is not authorized.",
      });
      return;
    }
    const size = telemetrySize(message);
    if (size > MAX_TELEMETRY_BYTES) {
      settle(delivery, "reject", {
        condition: Condition.messageSizeExceeded,
        description: `Message size ${size} bytes exceeds the limit of ${MAX_TELEMETRY_BYTES} bytes.`,
      });
      return;
    }
    const refusal = this.faults.takeTelemetryRefusal();
    if (refusal) {
      settle(delivery, "reject", refusal);
      return;
    }
    const record = telemetryRecord(message, {
      hubHostName,
      deviceId,
      authMethod: authorization.method,
      generationId: this.store.generationId(hubHostName, deviceId) ?? "0",
      enqueuedAt: new Date(),
    });
    this.telemetry.add(record);
    const ackDelayMs = this.faults.ackDelayMs;
    if (ackDelayMs > 0) this.timers.set(() => settle(delivery, "accept"), ackDelayMs);
    else settle(delivery, "accept");
    emitSafely(this.events, "telemetry", record);
  }
}
