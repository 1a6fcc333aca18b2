// Cloud-to-device messages beside the lifecycle: each delivery is handed to the registered handler with a lock
// token and stays unsettled until someone completes, abandons or rejects it. With no handler (a redeploy is
// under way) a delivery is held for a grace period, for the handler that comes back; when none does, it is
// abandoned so that the hub delivers it again (docs/methods-and-c2d.md §3). A message is never completed
// without a handler.
import { randomUUID } from "node:crypto";
import { ValidationError } from "./errors.js";

export type C2dOutcome = "complete" | "abandon" | "reject";
export const C2D_OUTCOMES: readonly C2dOutcome[] = ["complete", "abandon", "reject"];

/**
 * How long a delivery waits for a handler (a redeploy) before it is abandoned: under IoT Hub's one-minute
 * lock, and long, because each abandon spends one of the hub's 10 deliveries of the message.
 */
export const DEFAULT_C2D_HOLD_MS = 50_000;

/** A C2D message as the hub connection delivers it; `settle` answers on the message's own connection. */
export interface IncomingCloudMessage {
  body: Buffer;
  contentType?: string;
  contentEncoding?: string;
  messageId?: string;
  correlationId?: string;
  /** ISO 8601. */
  expiryTimeUtc?: string;
  properties: Record<string, string>;
  settle(outcome: C2dOutcome): Promise<void>;
}

/** What a handler receives: the message and the lock token that settles it. */
export interface CloudMessage extends Omit<IncomingCloudMessage, "settle"> {
  lockToken: string;
}

export type CloudMessageHandler = (message: CloudMessage) => void;

/** The lock token names no unsettled delivery: settled already, or its connection is gone. */
export class CloudMessageNotPendingError extends ValidationError {
  override name = "CloudMessageNotPendingError";
  constructor(readonly lockToken: string) {
    super(
      `no cloud-to-device message with lock token ${lockToken} waits to be settled: it was settled already, ` +
        `or the connection it came on is gone (the hub delivers it again)`,
    );
  }
}

interface Delivery {
  message: IncomingCloudMessage;
  origin: object;
  lockToken: string;
}

export interface C2dInboxEvents {
  /** A settle in the background failed (an abandon after the grace period). */
  warning(error: Error): void;
}

export class C2dInbox {
  private readonly handlers: CloudMessageHandler[] = [];
  /** Deliveries handed to a handler and not yet settled, by lock token. */
  private readonly unsettled = new Map<string, Delivery>();
  /** Deliveries that arrived with no handler, oldest first. */
  private readonly held: Delivery[] = [];
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: C2dInboxEvents,
    private readonly holdMs = DEFAULT_C2D_HOLD_MS,
  ) {}

  /** True while a handler is registered: the hub connection should receive C2D messages. */
  get listening(): boolean {
    return this.handlers.length > 0;
  }

  get heldCount(): number {
    return this.held.length;
  }

  get unsettledCount(): number {
    return this.unsettled.size;
  }

  /** Adds a handler (the first one takes the messages); held deliveries go to it. Returns the remover. */
  register(handler: CloudMessageHandler): () => void {
    this.handlers.push(handler);
    this.stopHolding();
    for (const delivery of this.held.splice(0)) this.handOver(delivery, handler);
    return () => {
      const index = this.handlers.indexOf(handler);
      // Receiving goes on: a message that comes before the next handler (a redeploy) is held for it.
      if (index >= 0) this.handlers.splice(index, 1);
    };
  }

  /** A message arrived on connection `origin`. */
  deliver(message: IncomingCloudMessage, origin: object): void {
    const delivery: Delivery = { message, origin, lockToken: randomUUID() };
    const handler = this.handlers[0];
    if (handler) {
      this.handOver(delivery, handler);
      return;
    }
    this.held.push(delivery);
    this.holdTimer ??= setTimeout(() => this.releaseHeld(), this.holdMs);
  }

  /** Settles a delivery handed to a handler. Rejects CloudMessageNotPendingError for an unknown lock token. */
  async settle(lockToken: string, outcome: C2dOutcome): Promise<void> {
    if (!C2D_OUTCOMES.includes(outcome)) {
      throw new ValidationError(
        `a cloud-to-device message is settled with complete, abandon or reject, not ${JSON.stringify(outcome)}`,
      );
    }
    const delivery = typeof lockToken === "string" ? this.unsettled.get(lockToken) : undefined;
    if (!delivery) throw new CloudMessageNotPendingError(String(lockToken));
    this.unsettled.delete(lockToken);
    await delivery.message.settle(outcome);
  }

  /** The connection `origin` is gone: the hub takes its unsettled deliveries back and delivers them again. */
  forget(origin: object): void {
    for (const [lockToken, delivery] of this.unsettled) {
      if (delivery.origin === origin) this.unsettled.delete(lockToken);
    }
    const kept = this.held.filter((delivery) => delivery.origin !== origin);
    this.held.splice(0, this.held.length, ...kept);
    if (this.held.length === 0) this.stopHolding();
  }

  /** Drops everything (the session closed); the hub delivers unsettled messages again. */
  clear(): void {
    this.stopHolding();
    this.held.length = 0;
    this.unsettled.clear();
  }

  private handOver(delivery: Delivery, handler: CloudMessageHandler): void {
    this.unsettled.set(delivery.lockToken, delivery);
    const { body, properties, contentType, contentEncoding, messageId, correlationId, expiryTimeUtc } =
      delivery.message;
    const message: CloudMessage = {
      body,
      properties,
      lockToken: delivery.lockToken,
      ...(contentType !== undefined ? { contentType } : {}),
      ...(contentEncoding !== undefined ? { contentEncoding } : {}),
      ...(messageId !== undefined ? { messageId } : {}),
      ...(correlationId !== undefined ? { correlationId } : {}),
      ...(expiryTimeUtc !== undefined ? { expiryTimeUtc } : {}),
    };
    try {
      handler(message);
    } catch (error) {
      this.events.warning(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * The grace period ended without a handler: abandon, so the hub delivers the messages again. The link keeps
   * receiving (detaching the SDK's C2D link mid-connection fails the connection), so a redelivery that finds
   * no handler either is held again.
   */
  private releaseHeld(): void {
    this.holdTimer = undefined;
    for (const delivery of this.held.splice(0)) {
      delivery.message.settle("abandon").catch((error: unknown) => {
        this.events.warning(error instanceof Error ? error : new Error(String(error)));
      });
    }
  }

  private stopHolding(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }
}
