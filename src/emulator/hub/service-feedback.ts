// Delivery feedback for the service side (azure-iothub Client.getFeedbackReceiver): final C2D outcomes the
// service asked for with iothub-ack, batched as Azure sends them on /messages/serviceBound/feedback — one
// message whose JSON body is an array of records — and kept until a feedback receiver accepts them
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-c2d, "Message feedback").
import { randomUUID } from "node:crypto";
import type { Delivery, Sender } from "rhea";
import { dataSection } from "./amqp-body.js";
import { amqpMessage } from "./amqp-wire.js";
import type { C2dEntry } from "./c2d-queue.js";
import type { DeviceConnections } from "./device-connections.js";
import type { LinkState } from "./link-state.js";
import type { C2dFeedbackEvent } from "./types.js";

export const FEEDBACK_CONTENT_TYPE = "application/vnd.microsoft.iothub.feedback.json";

/** IoT Hub's feedback status codes for each final outcome, and which ack mode asks for it. */
const STATUS_BY_OUTCOME: Partial<Record<C2dFeedbackEvent["outcome"], { status: string; positive: boolean }>> =
  {
    completed: { status: "Success", positive: true },
    rejected: { status: "Rejected", positive: false },
    expired: { status: "Expired", positive: false },
    deadLettered: { status: "DeliveryCountExceeded", positive: false },
  };

/** The statusCode a feedback record carries for `outcome`; undefined for outcomes that are not final. */
export function feedbackStatusCode(outcome: C2dFeedbackEvent["outcome"]): string | undefined {
  return STATUS_BY_OUTCOME[outcome]?.status;
}

export interface FeedbackRecord {
  originalMessageId: string;
  description: string;
  deviceGenerationId: string;
  deviceId: string;
  enqueuedTimeUtc: string;
  statusCode: string;
}

export class ServiceFeedback {
  /** Records not yet accepted by a feedback receiver, per hub (lower-case name). */
  private readonly pending = new Map<string, { hubHostName: string; records: FeedbackRecord[] }>();
  private readonly sent = new WeakMap<
    Delivery,
    { hubKey: string; records: FeedbackRecord[]; linkState: LinkState }
  >();

  constructor(
    private readonly connections: DeviceConnections,
    private readonly generationId: (hubHostName: string, deviceId: string) => string | undefined,
  ) {}

  /** A C2D message reached a final outcome: a record when its ack mode asks for one. */
  record(hubHostName: string, deviceId: string, entry: C2dEntry, outcome: C2dFeedbackEvent["outcome"]): void {
    const mapped = STATUS_BY_OUTCOME[outcome];
    if (!mapped) return;
    const wanted =
      entry.ack === "full" || (mapped.positive ? entry.ack === "positive" : entry.ack === "negative");
    if (!wanted) return;
    const hubKey = hubHostName.toLowerCase();
    let hub = this.pending.get(hubKey);
    if (!hub) {
      hub = { hubHostName, records: [] };
      this.pending.set(hubKey, hub);
    }
    hub.records.push({
      originalMessageId: entry.messageId,
      description: mapped.status,
      deviceGenerationId: this.generationId(hubHostName, deviceId) ?? "0",
      deviceId,
      enqueuedTimeUtc: new Date().toISOString(),
      statusCode: mapped.status,
    });
    this.flush(hubHostName);
  }

  /** Sends what is pending for `hubHostName` on a feedback link that has credit. */
  flush(hubHostName: string): void {
    const hubKey = hubHostName.toLowerCase();
    const hub = this.pending.get(hubKey);
    if (!hub || hub.records.length === 0) return;
    for (const state of this.connections.all()) {
      if (state.service?.hubHostName.toLowerCase() !== hubKey) continue;
      for (const linkState of state.links.values()) {
        if (linkState.role !== "service-feedback") continue;
        const sender = linkState.link as Sender;
        if (!sender.is_open() || !sender.sendable()) continue;
        const records = hub.records.splice(0);
        const delivery = sender.send(
          amqpMessage({
            message_id: randomUUID(),
            user_id: Buffer.from(hub.hubHostName.split(".")[0] ?? hub.hubHostName),
            content_type: FEEDBACK_CONTENT_TYPE,
            body: dataSection(Buffer.from(JSON.stringify(records))),
          }),
        );
        this.sent.set(delivery, { hubKey, records, linkState });
        linkState.c2dInFlight.add(delivery);
        return;
      }
    }
  }

  /** The receiver settled a feedback message: accepted ones are done, others come back. */
  onOutcome(delivery: Delivery | undefined, accepted: boolean): void {
    const sent = delivery ? this.sent.get(delivery) : undefined;
    if (!delivery || !sent) return;
    this.sent.delete(delivery);
    sent.linkState.c2dInFlight.delete(delivery);
    if (!accepted) this.requeue(sent.hubKey, sent.records);
  }

  /** A feedback link went away with messages unsettled: they are sent again on the next one. */
  linkClosed(linkState: LinkState): void {
    for (const delivery of linkState.c2dInFlight) {
      const sent = this.sent.get(delivery);
      if (!sent) continue;
      this.sent.delete(delivery);
      this.requeue(sent.hubKey, sent.records);
    }
    linkState.c2dInFlight.clear();
  }

  private requeue(hubKey: string, records: FeedbackRecord[]): void {
    this.pending.get(hubKey)?.records.unshift(...records);
  }
}
