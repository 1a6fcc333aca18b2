// Cloud-to-device messages: per-device queues (kept in a file across restarts), delivery on the device's C2D
// receiver link with a lock that expires or as leases to MQTT and HTTPS, and the outcomes (completed, rejected,
// abandoned, expired, dead-lettered) the device's settlements produce (docs/hub-amqp-protocol.md §5.1,
// docs/hub-mqtt-protocol.md §6 and §8).
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import { string_to_uuid, types as amqpTypes, type Delivery, type Message, type Sender } from "rhea";
import { dataSection } from "./amqp-body.js";
import { amqpMessage } from "./amqp-wire.js";
import { readJsonFile, writeJsonAtomically } from "./atomic-json-file.js";
import { C2dLimits, C2dQueue, type C2dEntry } from "./c2d-queue.js";
import type { DeviceConnections } from "./device-connections.js";
import { deviceKey, type DeviceStore } from "./device-store.js";
import { HubServiceError } from "./errors.js";
import type { LinkState } from "./link-state.js";
import { emitSafely } from "./service-events.js";
import type { TimerSet } from "./timer-set.js";
import type { C2dAck, C2dFeedbackEvent, CloudToDeviceMessage } from "./types.js";

/** How the device settled a C2D delivery. */
export type C2dOutcome = "completed" | "rejected" | "abandoned";

/** Where a final outcome goes when the service asked for delivery feedback. */
export type C2dFeedbackSink = (
  hubHostName: string,
  deviceId: string,
  entry: C2dEntry,
  outcome: C2dFeedbackEvent["outcome"],
) => void;

/** A message handed to a transport that has no AMQP link (MQTT, HTTPS); ended by exactly one settle or release. */
export interface C2dLease {
  readonly entry: C2dEntry;
  /** False when the lease had already ended (its lock expired): the device settled too late. */
  settle(outcome: C2dOutcome): boolean;
  /** The transport lost the message before the device settled it (connection gone, hub closing). */
  release(): void;
}

/** Told that a device has messages waiting, after the AMQP links took what their credit allows. */
export type C2dPendingListener = (hubHostName: string, deviceId: string) => void;

interface C2dDelivery {
  hubHostName: string;
  deviceId: string;
  entry: C2dEntry;
  linkState: LinkState;
  lockTimer: NodeJS.Timeout;
}

interface SavedQueue {
  hubHostName: string;
  deviceId: string;
  entries: (Omit<C2dEntry, "body"> & { body: string })[];
}

const ACKS: ReadonlySet<string> = new Set<C2dAck>(["none", "positive", "negative", "full"]);

export interface C2dDispatchOptions {
  /** JSON file the queues are kept in; none = memory only. */
  file?: string;
  lockTimeoutMs?: number;
  onFeedback?: C2dFeedbackSink;
}

export class C2dDispatch {
  private readonly c2dQueues = new Map<string, { hubHostName: string; deviceId: string; queue: C2dQueue }>();
  private readonly c2dDeliveries = new WeakMap<Delivery, C2dDelivery>();
  private c2dSequence = 0;
  private readonly lockTimeoutMs: number;
  private readonly pendingListeners = new Set<C2dPendingListener>();

  constructor(
    private readonly store: DeviceStore,
    private readonly connections: DeviceConnections,
    private readonly events: EventEmitter,
    private readonly timers: TimerSet,
    private readonly options: C2dDispatchOptions = {},
  ) {
    this.lockTimeoutMs = options.lockTimeoutMs ?? C2dLimits.lockTimeoutMs;
    this.load();
  }

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
    const ack = message.ack ?? "none";
    if (!ACKS.has(ack))
      throw new HubServiceError(
        400,
        "ArgumentInvalid",
        "iothub-ack must be none, positive, negative or full.",
      );
    const now = Date.now();
    let expiresAtMs = now + C2dLimits.defaultTtlMs;
    if (message.expiryTimeUtc !== undefined) {
      expiresAtMs = Date.parse(message.expiryTimeUtc);
      if (Number.isNaN(expiresAtMs))
        throw new HubServiceError(400, "ArgumentInvalid", "expiryTimeUtc is not a date.");
    }
    const queue = this.queueOf(device.hubHostName, deviceId);
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
      ...(message.contentType !== undefined ? { contentType: message.contentType } : {}),
      ...(message.contentEncoding !== undefined ? { contentEncoding: message.contentEncoding } : {}),
      body,
      properties: { ...(message.properties ?? {}) },
      expiresAtMs,
      enqueuedAtMs: now,
      deliveryCount: 0,
      sequenceNumber: this.c2dSequence,
      ack,
    });
    this.save();
    this.flush(device.hubHostName, deviceId);
  }

  /** Sends queued messages on the device's C2D links, then tells the other transports what is left. */
  flush(hubHostName: string, deviceId: string): void {
    this.flushLinks(hubHostName, deviceId);
    if ((this.c2dQueues.get(deviceKey(hubHostName, deviceId))?.queue.pendingCount ?? 0) === 0) return;
    for (const listener of this.pendingListeners) listener(hubHostName, deviceId);
  }

  onPending(listener: C2dPendingListener): void {
    this.pendingListeners.add(listener);
  }

  /**
   * The next message of the device for a transport without AMQP links, or undefined when none waits. With
   * `onLockExpired`, the message stays locked for the lock timeout as on an AMQP link: past it, it counts as
   * abandoned and `onLockExpired` tells the transport that its lock token is void.
   */
  take(hubHostName: string, deviceId: string, onLockExpired?: () => void): C2dLease | undefined {
    const queue = this.c2dQueues.get(deviceKey(hubHostName, deviceId))?.queue;
    const entry = queue?.takeNext(Date.now(), (expired) =>
      this.finish(hubHostName, deviceId, expired, "expired"),
    );
    if (!queue || !entry) return undefined;
    const record = { hubHostName, deviceId, entry };
    let ended = false;
    const end = (): boolean => {
      if (ended) return false;
      ended = true;
      if (lockTimer) this.timers.clear(lockTimer);
      return true;
    };
    const lockTimer = onLockExpired
      ? this.timers.set(() => {
          if (!end()) return;
          this.settle(record, "abandoned");
          onLockExpired();
        }, this.lockTimeoutMs)
      : undefined;
    return {
      entry,
      settle: (outcome) => {
        if (!end()) return false;
        this.settle(record, outcome);
        return true;
      },
      release: () => {
        if (!end()) return;
        queue.requeue(entry);
        setImmediate(() => this.flush(hubHostName, deviceId));
      },
    };
  }

  private flushLinks(hubHostName: string, deviceId: string): void {
    const queue = this.c2dQueues.get(deviceKey(hubHostName, deviceId))?.queue;
    if (!queue) return;
    for (const [state] of this.connections.authorizationsOf(hubHostName, deviceId)) {
      for (const linkState of state.links.values()) {
        if (linkState.role !== "c2d" || linkState.deviceId !== deviceId) continue;
        const sender = linkState.link as Sender;
        while (sender.is_open() && sender.sendable()) {
          const entry = queue.takeNext(Date.now(), (expired) =>
            this.finish(hubHostName, deviceId, expired, "expired"),
          );
          if (!entry) return;
          // The delivery tag is the lock token, a 16-byte GUID (§5.1).
          const delivery = sender.send(
            this.c2dMessage(hubHostName, deviceId, entry),
            string_to_uuid(randomUUID()),
          );
          const lockTimer = this.timers.set(() => this.lockExpired(delivery), this.lockTimeoutMs);
          this.c2dDeliveries.set(delivery, { hubHostName, deviceId, entry, linkState, lockTimer });
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
      ...(entry.contentType !== undefined ? { content_type: entry.contentType } : {}),
      ...(entry.contentEncoding !== undefined ? { content_encoding: entry.contentEncoding } : {}),
      absolute_expiry_time: new Date(entry.expiresAtMs),
      message_annotations: {
        "x-opt-sequence-number": amqpTypes.wrap_long(entry.sequenceNumber),
        "x-opt-enqueued-time": new Date(entry.enqueuedAtMs),
        "x-opt-delivery-count": amqpTypes.wrap_int(entry.deliveryCount - 1),
      },
      application_properties: { ...entry.properties, "iothub-ack": entry.ack },
      body: dataSection(entry.body),
    });
  }

  /** The device settled a delivery (accepted, rejected, released or modified). */
  onOutcome(delivery: Delivery | undefined, outcome: C2dOutcome): void {
    const record = delivery ? this.untrack(delivery) : undefined;
    if (!record) return; // not a C2D delivery, or its lock expired before the device settled it
    this.settle(record, outcome);
  }

  private settle(record: Pick<C2dDelivery, "hubHostName" | "deviceId" | "entry">, outcome: C2dOutcome): void {
    const queue = this.c2dQueues.get(deviceKey(record.hubHostName, record.deviceId))?.queue;
    if (!queue) return;
    if (outcome === "abandoned") {
      if (record.entry.deliveryCount >= C2dLimits.maxDeliveryCount) {
        queue.settled(record.entry);
        this.finish(record.hubHostName, record.deviceId, record.entry, "deadLettered");
        return;
      }
      queue.requeue(record.entry);
      this.save();
      this.emitFeedback(record.hubHostName, record.deviceId, record.entry, "abandoned");
      setImmediate(() => this.flush(record.hubHostName, record.deviceId));
      return;
    }
    queue.settled(record.entry);
    this.finish(record.hubHostName, record.deviceId, record.entry, outcome);
  }

  /** The device held a message past its lock: it counts as abandoned, and a late settlement is ignored. */
  private lockExpired(delivery: Delivery): void {
    const record = this.untrack(delivery);
    if (record) this.settle(record, "abandoned");
  }

  private untrack(delivery: Delivery): C2dDelivery | undefined {
    const record = this.c2dDeliveries.get(delivery);
    if (!record) return undefined;
    this.c2dDeliveries.delete(delivery);
    this.timers.clear(record.lockTimer);
    record.linkState.c2dInFlight.delete(delivery);
    return record;
  }

  /** A message left the queue for good. */
  private finish(
    hubHostName: string,
    deviceId: string,
    entry: C2dEntry,
    outcome: C2dFeedbackEvent["outcome"],
  ): void {
    this.save();
    this.emitFeedback(hubHostName, deviceId, entry, outcome);
    this.options.onFeedback?.(hubHostName, deviceId, entry, outcome);
  }

  private emitFeedback(
    hubHostName: string,
    deviceId: string,
    entry: C2dEntry,
    outcome: C2dFeedbackEvent["outcome"],
  ): void {
    const event: C2dFeedbackEvent = { hubHostName, deviceId, messageId: entry.messageId, outcome };
    emitSafely(this.events, "c2dFeedback", event);
  }

  /** Messages out on a C2D link that went away unsettled are delivered again later (lock lost). */
  linkClosed(linkState: LinkState): void {
    const deliveries = [...linkState.c2dInFlight].reverse();
    for (const delivery of deliveries) {
      const record = this.untrack(delivery);
      if (record)
        this.c2dQueues.get(deviceKey(record.hubHostName, record.deviceId))?.queue.requeue(record.entry);
    }
    linkState.c2dInFlight.clear();
  }

  private queueOf(hubHostName: string, deviceId: string): C2dQueue {
    const key = deviceKey(hubHostName, deviceId);
    let found = this.c2dQueues.get(key);
    if (!found) {
      found = { hubHostName, deviceId, queue: new C2dQueue() };
      this.c2dQueues.set(key, found);
    }
    return found.queue;
  }

  private save(): void {
    if (!this.options.file) return;
    const queues: SavedQueue[] = [];
    for (const { hubHostName, deviceId, queue } of this.c2dQueues.values()) {
      const entries = queue.entries().map((entry) => ({ ...entry, body: entry.body.toString("base64") }));
      if (entries.length > 0) queues.push({ hubHostName, deviceId, entries });
    }
    writeJsonAtomically(this.options.file, { sequence: this.c2dSequence, queues });
  }

  private load(): void {
    if (!this.options.file) return;
    const saved = readJsonFile(this.options.file) as { sequence?: number; queues?: SavedQueue[] } | undefined;
    if (!saved) return;
    this.c2dSequence = typeof saved.sequence === "number" ? saved.sequence : 0;
    for (const { hubHostName, deviceId, entries } of saved.queues ?? []) {
      const queue = this.queueOf(hubHostName, deviceId);
      for (const entry of entries) queue.enqueue({ ...entry, body: Buffer.from(entry.body, "base64") });
    }
  }
}
