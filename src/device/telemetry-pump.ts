// The telemetry pipeline beside the lifecycle: the outbox, and a pump that sends from it while a hub link is
// attached, up to `window` messages in flight, in order. A message leaves for good only when the hub accepted
// it and every message before it (or refused it for what it is): an acknowledgement that overtakes an earlier
// message's is held until that one is accepted too. When a send fails, everything still in flight, held
// acknowledgements included, goes back to the front of the outbox and is sent again with the same messageId
// (go-back-N, at-least-once). So if the hub keeps the last copy of each messageId, it sees the order of
// enqueue() calls, across re-sends and reconnects. A throttled or quota-refused send pauses the pump instead
// of dropping the message (docs/architecture.md "Telemetry").
import type { Message } from "azure-iot-device";
import { HubError, OperationTimeoutError, OutboxOverflowError, SessionStoppedError } from "./errors.js";
import type { HubLink } from "./hub-connection.js";
import { Outbox, type OverflowPolicy } from "./outbox.js";
import type { OutboxLog } from "./outbox-log.js";
import type { RetryPolicy } from "./retry-policy.js";
import { describeError, isMessageRefused, isQuotaExceeded, rootCause } from "./retryable.js";

export interface OutboxEntry {
  message: Message;
  /** Its record in the outbox log, when the outbox is on disk. */
  seq?: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface InFlight {
  entry: OutboxEntry;
  /** The hub accepted it, but an earlier message is still unanswered: not settled yet. */
  accepted: boolean;
  /** When it went out (performance.now()): its acknowledgement is due ackTimeoutMs later. */
  sentAt: number;
}

export type PauseReason = "throttled" | "quota-exceeded" | "hub-error";

export interface TelemetryPause {
  reason: PauseReason;
  /** When sending resumes. */
  retryInMs: number;
  /** Secret-free description of the refusal. */
  error: string;
}

export interface TelemetryDrop {
  policy: OverflowPolicy;
  droppedTotal: number;
  outboxSize: number;
  messageId: string;
}

export interface TelemetryPumpOptions {
  capacity: number;
  overflow: OverflowPolicy;
  /** Most messages sent and not yet acknowledged. */
  window: number;
  ackTimeoutMs: number;
  policy: RetryPolicy;
  /** The outbox on disk: what it recovered is sent first; each message is kept there until it leaves. */
  log?: OutboxLog;
  deviceId(): string;
  /** The link cannot carry telemetry any more (no ack, refused token, broken link): reconnect. */
  linkFailed(link: HubLink, error: Error): void;
  paused(pause: TelemetryPause): void;
  resumed(): void;
  dropped(drop: TelemetryDrop): void;
}

/** Refusals the hub makes on a working link that time mends: wait, then send the same message again. */
const PAUSING_ERRORS = new Set(["ThrottlingError", "IotHubQuotaExceededError", "InternalServerError"]);

export class TelemetryPump {
  private readonly outbox: Outbox<OutboxEntry>;
  private readonly inFlight: InFlight[] = [];
  private resends = 0;
  private link: HubLink | undefined;
  /** Bumped whenever the in-flight messages are taken back: late answers for them no longer count. */
  private generation = 0;
  private pauseTimer: NodeJS.Timeout | undefined;
  private pauseAttempts = 0;
  /** One timer for the whole window, due when the oldest unanswered message's acknowledgement is. */
  private ackTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: TelemetryPumpOptions) {
    this.outbox = new Outbox({ capacity: options.capacity, overflow: options.overflow });
    if (!Number.isInteger(options.window) || options.window < 1) {
      throw new RangeError("the telemetry window must be a whole number >= 1");
    }
    // Messages kept on disk by an earlier process: nobody awaits them any more, but they are sent first.
    for (const { seq, message } of options.log?.recovered() ?? []) {
      const pushed = this.outbox.push({ message, seq, resolve: () => undefined, reject: () => undefined });
      if (!pushed.accepted) options.log?.done(seq);
      else if (pushed.dropped) this.drop(pushed.dropped, "drop-oldest");
    }
  }

  /** Messages not yet accepted by the hub: waiting in the outbox or in flight. */
  get size(): number {
    return this.outbox.size + this.inFlight.length;
  }

  /** Messages sent again after a failure (each may reach the hub twice, with the same messageId). */
  get resentCount(): number {
    return this.resends;
  }

  get droppedCount(): number {
    return this.outbox.dropped;
  }

  get capacity(): number {
    return this.outbox.capacity;
  }

  /** Queues a message; resolves once the hub accepted it. */
  enqueue(message: Message): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const entry: OutboxEntry = { message, resolve, reject };
      const pushed = this.outbox.push(entry);
      if (!pushed.accepted) {
        this.reportDrop(message);
        reject(new OutboxOverflowError("reject-new", this.outbox.capacity));
        return;
      }
      if (this.options.log) {
        try {
          entry.seq = this.options.log.keep(message);
        } catch (error) {
          // Not on disk, so not accepted: the caller hears why (a full or read-only disk).
          this.outbox.remove(entry);
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
      }
      if (pushed.dropped) this.drop(pushed.dropped, "drop-oldest");
      this.fill();
    });
  }

  /** Starts sending on `link` (the session is connected). */
  attach(link: HubLink): void {
    this.detach();
    this.link = link;
    this.fill();
  }

  /** Stops sending; what was in flight goes back to the front of the outbox, in order. */
  detach(): void {
    this.link = undefined;
    this.clearPause();
    this.takeBackInFlight();
  }

  /**
   * Rejects every message not yet accepted (the session is closing); returns how many there were. On disk
   * they stay in the log and are sent by the next session over it.
   */
  rejectAll(error: SessionStoppedError): number {
    this.detach();
    const entries = this.outbox.drain();
    for (const entry of entries) entry.reject(error);
    return entries.length;
  }

  private fill(): void {
    const link = this.link;
    while (link && this.pauseTimer === undefined && this.inFlight.length < this.options.window) {
      const entry = this.outbox.shift();
      if (!entry) break;
      const flight: InFlight = { entry, accepted: false, sentAt: performance.now() };
      this.inFlight.push(flight);
      this.send(flight, link, this.generation);
    }
    this.watchAcknowledgements();
  }

  private send(flight: InFlight, link: HubLink, generation: number): void {
    link.sendEvent(flight.entry.message).then(
      () => {
        if (generation !== this.generation) return;
        flight.accepted = true;
        this.pauseAttempts = 0;
        this.settleAccepted();
        this.fill();
      },
      (error: unknown) => {
        if (generation !== this.generation) return;
        this.failed(flight, link, error instanceof Error ? error : new Error(String(error)));
      },
    );
  }

  /**
   * Arms the acknowledgement timer for the oldest unanswered message; messages go out in order, so no later
   * one is due before it. One timer per window rather than one per message: a timer and its closures per
   * message were a measurable share of the pump's cost at thousands of messages per second.
   */
  private watchAcknowledgements(): void {
    if (this.ackTimer !== undefined) return;
    const oldest = this.inFlight.find((flight) => !flight.accepted);
    const link = this.link;
    if (!oldest || !link) return;
    const generation = this.generation;
    const dueInMs = oldest.sentAt + this.options.ackTimeoutMs - performance.now();
    this.ackTimer = setTimeout(
      () => {
        this.ackTimer = undefined;
        if (generation !== this.generation) return;
        const late = this.inFlight.find((flight) => !flight.accepted);
        if (late && performance.now() - late.sentAt >= this.options.ackTimeoutMs) {
          this.failed(late, link, new OperationTimeoutError("telemetry", this.options.ackTimeoutMs));
          return;
        }
        this.watchAcknowledgements();
      },
      Math.max(0, Math.ceil(dueInMs)),
    );
  }

  private clearAcknowledgementTimer(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
  }

  /** Resolves the accepted messages at the head of the window, in order. */
  private settleAccepted(): void {
    while (this.inFlight.length > 0 && this.inFlight[0].accepted) {
      const entry = this.inFlight.shift()?.entry;
      this.forget(entry);
      entry?.resolve();
    }
  }

  private failed(flight: InFlight, link: HubLink, error: Error): void {
    const entry = flight.entry;
    if (isMessageRefused(error)) {
      // Refused for what it is (too large, malformed): it will never be accepted, so it holds no one up.
      this.inFlight.splice(this.inFlight.indexOf(flight), 1);
      this.forget(entry);
      entry.reject(
        new HubError(
          `IoT Hub refused the telemetry message: ${describeError(error)}`,
          this.options.deviceId(),
          {
            cause: error,
          },
        ),
      );
      this.settleAccepted();
      this.fill();
      return;
    }
    this.takeBackInFlight();
    const name = (rootCause(error) as { name?: unknown } | undefined)?.name;
    if (typeof name === "string" && PAUSING_ERRORS.has(name)) {
      this.pause(error);
      return;
    }
    // No ack in time, a refused token, a broken link: this link is done; the lifecycle reconnects.
    this.link = undefined;
    this.options.linkFailed(link, error);
  }

  private pause(error: Error): void {
    this.pauseAttempts += 1;
    const retryInMs = this.options.policy.delayMs(this.pauseAttempts, error);
    const reason: PauseReason = isQuotaExceeded(error)
      ? "quota-exceeded"
      : (rootCause(error) as Error).name === "ThrottlingError"
        ? "throttled"
        : "hub-error";
    this.pauseTimer = setTimeout(() => {
      this.pauseTimer = undefined;
      this.options.resumed();
      this.fill();
    }, retryInMs);
    this.options.paused({ reason, retryInMs, error: describeError(error) });
  }

  private clearPause(): void {
    if (this.pauseTimer === undefined) return;
    clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    this.options.resumed();
  }

  private takeBackInFlight(): void {
    this.generation += 1;
    this.clearAcknowledgementTimer();
    const entries = this.inFlight.splice(0).map((flight) => flight.entry);
    this.resends += entries.length;
    for (const displaced of this.outbox.requeue(entries)) this.drop(displaced, this.outbox.overflow);
  }

  /** The message left the outbox for good: off the disk too. */
  private forget(entry: OutboxEntry | undefined): void {
    if (entry?.seq !== undefined) this.options.log?.done(entry.seq);
  }

  private drop(entry: OutboxEntry, policy: OverflowPolicy): void {
    this.forget(entry);
    this.reportDrop(entry.message);
    entry.reject(new OutboxOverflowError(policy, this.outbox.capacity));
  }

  private reportDrop(message: Message): void {
    this.options.dropped({
      policy: this.outbox.overflow,
      droppedTotal: this.outbox.dropped,
      outboxSize: this.size,
      messageId: message.messageId,
    });
  }
}
