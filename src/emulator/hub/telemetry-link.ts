// The device's telemetry sender link: size limits, throttling, recording and acknowledging device-to-cloud
// messages, one per transfer or several in a batch (docs/hub-amqp-protocol.md §3).
import type { EventEmitter } from "node:events";
import type { Delivery, Message } from "rhea";
import { Condition, settle } from "./amqp-wire.js";
import type { ConnectionState } from "./device-connections.js";
import type { DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import type { LinkState } from "./link-state.js";
import { emitSafely } from "./service-events.js";
import { unpackBatch } from "./telemetry-batch.js";
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
    this.receive(state, linkState, delivery, () => ({ ok: true, messages: [message] }));
  }

  /** A batch transfer (message-format 0x80013700): all its messages are recorded, or none. */
  onBatch(state: ConnectionState, linkState: LinkState, delivery: Delivery, payload: Buffer): void {
    this.receive(state, linkState, delivery, () => {
      if (payload.length > MAX_TELEMETRY_BYTES) {
        return {
          ok: false,
          condition: Condition.messageSizeExceeded,
          reason: `Batch size ${payload.length} bytes exceeds the limit of ${MAX_TELEMETRY_BYTES} bytes.`,
        };
      }
      const batch = unpackBatch(payload);
      return batch.ok ? batch : { ok: false, condition: Condition.decodeError, reason: batch.reason };
    });
  }

  private receive(
    state: ConnectionState,
    linkState: LinkState,
    delivery: Delivery,
    unpack: () => { ok: true; messages: Message[] } | { ok: false; condition: string; reason: string },
  ): void {
    const { hubHostName, deviceId } = linkState;
    const authorization = deviceId !== undefined ? state.authorizations.get(deviceId) : undefined;
    if (!hubHostName || !deviceId || !authorization) {
      settle(delivery, "reject", {
        condition: Condition.unauthorized,
        description: "The device is not authorized.",
      });
      return;
    }
    const unpacked = unpack();
    if (!unpacked.ok) {
      settle(delivery, "reject", { condition: unpacked.condition, description: unpacked.reason });
      return;
    }
    for (const message of unpacked.messages) {
      const size = telemetrySize(message);
      if (size > MAX_TELEMETRY_BYTES) {
        settle(delivery, "reject", {
          condition: Condition.messageSizeExceeded,
          description: `Message size ${size} bytes exceeds the limit of ${MAX_TELEMETRY_BYTES} bytes.`,
        });
        return;
      }
    }
    const refusal = this.faults.takeTelemetryRefusal();
    if (refusal) {
      settle(delivery, "reject", refusal);
      return;
    }
    const enqueuedAt = new Date();
    const generationId = this.store.generationId(hubHostName, deviceId) ?? "0";
    const records = unpacked.messages.map((message) =>
      telemetryRecord(message, {
        hubHostName,
        deviceId,
        authMethod: authorization.method,
        generationId,
        enqueuedAt,
      }),
    );
    for (const record of records) this.telemetry.add(record);
    const ackDelayMs = this.faults.ackDelayMs;
    if (ackDelayMs > 0) this.timers.set(() => settle(delivery, "accept"), ackDelayMs);
    else settle(delivery, "accept");
    for (const record of records) emitSafely(this.events, "telemetry", record);
  }
}
