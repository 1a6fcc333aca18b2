// What became of the cloud-to-device messages sent from the page: the hub reports each settlement as a
// "c2dFeedback" event (completed, rejected, abandoned, expired, dead-lettered); this keeps the latest state of
// the page's own messages so that the page can poll it. Bounded: the oldest entries are forgotten.
import type { C2dAck, C2dFeedbackEvent, HubService } from "../hub/types.js";
import { feedbackStatusCode } from "../hub/service-feedback.js";

/**
 * queued -> (abandoned -> queued again, redelivered)* -> completed | rejected | expired | deadLettered.
 * "queued" covers waiting in the device's queue and being out to the device, not yet settled.
 */
export type C2dTrackedState = "queued" | "abandoned" | C2dFinalState;
export type C2dFinalState = "completed" | "rejected" | "expired" | "deadLettered";

const FINAL_STATES: ReadonlySet<C2dTrackedState> = new Set<C2dFinalState>([
  "completed",
  "rejected",
  "expired",
  "deadLettered",
]);

export interface C2dStateView {
  messageId: string;
  deviceId: string;
  state: C2dTrackedState;
  /** True once the hub will do nothing more with the message. */
  final: boolean;
  ack: C2dAck;
  /** The statusCode of the service's delivery feedback record for a final state (Success, Rejected, ...). */
  feedbackStatusCode?: string;
  /** How often the device abandoned it (or held it past its lock) so far. */
  abandonCount: number;
  sentUtc: string;
  updatedUtc: string;
  expiryTimeUtc?: string;
}

/** Enough for every message a person sends in a session of the page. */
export const TRACKED_MAX = 500;

const keyOf = (hubHostName: string, deviceId: string, messageId: string) =>
  JSON.stringify([hubHostName.toLowerCase(), deviceId, messageId]);

export class C2dTracker {
  private readonly tracked = new Map<string, C2dStateView>();
  private readonly onFeedback = (event: C2dFeedbackEvent) => this.settled(event);

  constructor(private readonly service: HubService) {
    service.on("c2dFeedback", this.onFeedback);
  }

  /** Call before handing the message to the hub: a device may settle it before sendCloudToDevice returns. */
  sent(
    hubHostName: string,
    deviceId: string,
    message: { messageId: string; ack: C2dAck; expiryTimeUtc?: string },
  ): C2dStateView {
    const now = new Date().toISOString();
    const view: C2dStateView = {
      messageId: message.messageId,
      deviceId,
      state: "queued",
      final: false,
      ack: message.ack,
      abandonCount: 0,
      sentUtc: now,
      updatedUtc: now,
      ...(message.expiryTimeUtc !== undefined ? { expiryTimeUtc: message.expiryTimeUtc } : {}),
    };
    const key = keyOf(hubHostName, deviceId, message.messageId);
    this.tracked.delete(key);
    this.tracked.set(key, view);
    while (this.tracked.size > TRACKED_MAX) {
      const oldest = this.tracked.keys().next().value;
      if (oldest === undefined) break;
      this.tracked.delete(oldest);
    }
    return { ...view };
  }

  /** The hub refused the message: it was never queued. */
  forget(hubHostName: string, deviceId: string, messageId: string): void {
    this.tracked.delete(keyOf(hubHostName, deviceId, messageId));
  }

  get(hubHostName: string, deviceId: string, messageId: string): C2dStateView | undefined {
    const view = this.tracked.get(keyOf(hubHostName, deviceId, messageId));
    return view ? { ...view } : undefined;
  }

  close(): void {
    this.service.off("c2dFeedback", this.onFeedback);
  }

  private settled(event: C2dFeedbackEvent): void {
    const view = this.tracked.get(keyOf(event.hubHostName, event.deviceId, event.messageId));
    if (!view || view.final) return;
    view.updatedUtc = new Date().toISOString();
    view.state = event.outcome;
    if (event.outcome === "abandoned") {
      view.abandonCount += 1;
      return;
    }
    view.final = FINAL_STATES.has(event.outcome);
    const status = feedbackStatusCode(event.outcome);
    if (status !== undefined) view.feedbackStatusCode = status;
  }
}
