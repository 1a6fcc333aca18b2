// Cloud-to-device messages: per-device queues, delivery on the device's C2D receiver link, and the feedback
// (completed, rejected, abandoned, expired, dead-lettered) the device's settlements produce
// (hub-amqp-protocol.md §5.1).
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import { string_to_uuid, types as amqpTypes, type Delivery, type Message, type Sender } from "rhea";
import { dataSection } from "./amqp-body.js";
import { amqpMessage } from "./amqp-wire.js";
import { C2dLimits, C2dQueue, type C2dEntry } from "./c2d-queue.js";
import type { DeviceConnections } from "./device-connections.js";
import { deviceKey, type DeviceStore } from "./device-store.js";
import { HubServiceError } from "./errors.js";
import type { LinkState } from "./link-state.js";
import { emitSafely } from "./service-events.js";
import type { C2dFeedbackEvent, CloudToDeviceMessage } from "./types.js";

/** How the device settled a C2D delivery. */
export type C2dOutcome = "completed" | "rejected" | "abandoned";

/** A message handed to a transport that has no AMQP link (MQTT, HTTPS); ended by exactly one settle or release. */
export interface C2dLease {
  readonly entry: C2dEntry;
  settle(outcome: C2dOutcome): void;
  /** The transport lost the message before the device settled it (connection gone, lock expired). */
  release(): void;
}

/** Told that a device has messages waiting, after the AMQP links took what their credit allows. */
export type C2dPendingListener = (hubHostName: string, deviceId: string) => void;

interface C2dDelivery {
  hubHostName: string;
  deviceId: string;
  entry: C2dEntry;
  linkState: LinkState;
}

export class C2dDispatch {
  private readonly c2dQueues = new Map<string, C2dQueue>();
  private readonly c2dDeliveries = new WeakMap<Delivery, C2dDelivery>();
  private c2dSequence = 0;
  private readonly pendingListeners = new Set<C2dPendingListener>();

  constructor(
    private readonly store: DeviceStore,
    private readonly connections: DeviceConnections,
    private readonly events: EventEmitter,
  ) {}

  send(hubHostName: string, deviceId: string, message: CloudToDeviceMessage): void {
    const device = this.store.getOrThrow(hubHostName, deviceId);
    const body = typeof message.body === "string" ? Buffer.from(message.body) : message.body;
    if (!Buffer.isBuffer(body))
      throw new HubServiceError(400, "ArgumentInvalid", "The message body must be bytes or text.");
    if (body.length > C2dLimits.maxMessageBytes) {
      throw new HubServiceError(
        413,
        "MessageTooLarge",
        `Message size exceeds ${C2dLimits.maxMessageBytes} bytes.`,
      );
    }
    let expiresAtMs = Date.now() + C2dLimits.defaultTtlMs;
    if (message.expiryTimeUtc !== undefined) {
      expiresAtMs = Date.parse(message.expiryTimeUtc);
      if (Number.isNaN(expiresAtMs))
        throw new HubServiceError(400, "ArgumentInvalid", "expiryTimeUtc is not a date.");
    }
    const key = deviceKey(device.hubHostName, deviceId);
    let queue = this.c2dQueues.get(key);
    if (!queue) {
      queue = new C2dQueue();
      this.c2dQueues.set(key, queue);
    }
    if (queue.size >= C2dLimits.maxPendingPerDevice) {
      throw new HubServiceError(
        403,
        "DeviceMaximumQueueDepthExceeded",
        `Device ${deviceId} already has ${C2dLimits.maxPendingPerDevice} messages pending.`,
      );
    }
    this.c2dSequence += 1;
    queue.enqueue({
      messageId: message.messageId ?? randomUUID(),
      ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      body,
      properties: { ...(message.properties ?? {}) },
      expiresAtMs,
      deliveryCount: 0,
      sequenceNumber: this.c2dSequence,
    });
    this.flush(device.hubHostName, deviceId);
  }

  /** Sends queued messages on the device's C2D links, then tells the other transports what is left. */
  flush(hubHostName: string, deviceId: string): void {
    this.flushLinks(hubHostName, deviceId);
    if ((this.c2dQueues.get(deviceKey(hubHostName, deviceId))?.pendingCount ?? 0) === 0) return;
    for (const listener of this.pendingListeners) listener(hubHostName, deviceId);
  }

  onPending(listener: C2dPendingListener): void {
    this.pendingListeners.add(listener);
  }

  /** The next message of the device for a transport without AMQP links, or undefined when none waits. */
  take(hubHostName: string, deviceId: string): C2dLease | undefined {
    const queue = this.c2dQueues.get(deviceKey(hubHostName, deviceId));
    const entry = queue?.takeNext(Date.now(), (expired) =>
      this.emitFeedback(hubHostName, deviceId, expired.messageId, "expired"),
    );
    if (!queue || !entry) return undefined;
    let ended = false;
    return {
      entry,
      settle: (outcome) => {
        if (ended) return;
        ended = true;
        this.settleEntry(hubHostName, deviceId, entry, outcome);
      },
      release: () => {
        if (ended) return;
        ended = true;
        queue.requeue(entry);
        setImmediate(() => this.flush(hubHostName, deviceId));
      },
    };
  }

  private flushLinks(hubHostName: string, deviceId: string): void {
    const queue = this.c2dQueues.get(deviceKey(hubHostName, deviceId));
    if (!queue) return;
    for (const [state] of this.connections.authorizationsOf(hubHostName, deviceId)) {
      for (const linkState of state.links.values()) {
        if (linkState.role !== "c2d" || linkState.deviceId !== deviceId) continue;
        const sender = linkState.link as Sender;
        while (sender.is_open() && sender.sendable()) {
          const entry = queue.takeNext(Date.now(), (expired) =>
            this.emitFeedback(hubHostName, deviceId, expired.messageId, "expired"),
          );
          if (!entry) return;
          // The delivery tag is the lock token, a 16-byte GUID (§5.1).
          const delivery = sender.send(
            this.c2dMessage(hubHostName, deviceId, entry),
            string_to_uuid(randomUUID()),
          );
          this.c2dDeliveries.set(delivery, { hubHostName, deviceId, entry, linkState });
          linkState.c2dInFlight.add(delivery);
        }
      }
    }
  }

  private c2dMessage(hubHostName: string, deviceId: string, entry: C2dEntry): Message {
    return amqpMessage({
      message_id: entry.messageId,
      to: `/devices/${deviceId}/messages/devicebound`,
      user_id: Buffer.from(hubHostName.split(".")[0] ?? hubHostName),
      ...(entry.correlationId !== undefined ? { correlation_id: entry.correlationId } : {}),
      absolute_expiry_time: new Date(entry.expiresAtMs),
      message_annotations: { "x-opt-sequence-number": amqpTypes.wrap_long(entry.sequenceNumber) },
      ...(Object.keys(entry.properties).length > 0
        ? { application_properties: { ...entry.properties } }
        : {}),
      body: dataSection(entry.body),
    });
  }

  /** The device settled a delivery (accepted, rejected, released or modified). */
  onOutcome(delivery: Delivery | undefined, outcome: C2dOutcome): void {
    const record = delivery ? this.c2dDeliveries.get(delivery) : undefined;
    if (!delivery || !record) return;
    this.c2dDeliveries.delete(delivery);
    record.linkState.c2dInFlight.delete(delivery);
    this.settleEntry(record.hubHostName, record.deviceId, record.entry, outcome);
  }

  private settleEntry(hubHostName: string, deviceId: string, entry: C2dEntry, outcome: C2dOutcome): void {
    const queue = this.c2dQueues.get(deviceKey(hubHostName, deviceId));
    if (!queue) return;
    if (outcome === "abandoned") {
      if (entry.deliveryCount >= C2dLimits.maxDeliveryCount) {
        queue.settled();
        this.emitFeedback(hubHostName, deviceId, entry.messageId, "deadLettered");
        return;
      }
      queue.requeue(entry);
      this.emitFeedback(hubHostName, deviceId, entry.messageId, "abandoned");
      setImmediate(() => this.flush(hubHostName, deviceId));
      return;
    }
    queue.settled();
    this.emitFeedback(hubHostName, deviceId, entry.messageId, outcome);
  }

  private emitFeedback(
    hubHostName: string,
    deviceId: string,
    messageId: string,
    outcome: C2dFeedbackEvent["outcome"],
  ): void {
    const event: C2dFeedbackEvent = { hubHostName, deviceId, messageId, outcome };
    emitSafely(this.events, "c2dFeedback", event);
  }

  /** Messages out on a C2D link that went away unsettled are delivered again later (lock lost). */
  linkClosed(linkState: LinkState): void {
    const deliveries = [...linkState.c2dInFlight].reverse();
    linkState.c2dInFlight.clear();
    for (const delivery of deliveries) {
      const record = this.c2dDeliveries.get(delivery);
      if (!record) continue;
      this.c2dDeliveries.delete(delivery);
      this.c2dQueues.get(deviceKey(record.hubHostName, record.deviceId))?.requeue(record.entry);
    }
  }
}
