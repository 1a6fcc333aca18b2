// DeviceSession: provision -> connect -> connected, with one reconnect loop, a telemetry outbox and twin
// sync. Framework-free: a plain script or a Node-RED config node owns one (ARCHITECTURE.md "Device session").
import { EventEmitter } from "node:events";
import { ExponentialBackoff, RetrySchedule } from "./backoff.js";
import { DEFAULTS, type DeviceSessionConfig } from "./config.js";
import { checkConfig, sdkDependencies, type SessionDependencies } from "./dependencies.js";
import { HubError, OperationTimeoutError, OutboxOverflowError, SessionStoppedError } from "./errors.js";
import { withDeadline, type HubLink, type TwinDocument } from "./hub-connection.js";
import { toHubMessage, type TelemetryOptions, type TelemetryPayload } from "./message-mapping.js";
import { Outbox } from "./outbox.js";
import {
  JsonFileRegistrationStore,
  MemoryRegistrationStore,
  type CachedRegistration,
  type RegistrationStore,
} from "./registration-store.js";
import { describeError, isIdentityRejected, isRetryable, isThrottled } from "./retryable.js";
import { assertTransition, canTransition, type SessionState } from "./states.js";
import { validateTwinPatch } from "./validation.js";
import type { Message } from "azure-iot-device";

/** What every `state` event carries: exactly what Node-RED's msg.iothub will hold. Never a secret. */
export interface SessionStateEvent {
  state: SessionState;
  registrationId?: string;
  deviceId?: string;
  hub?: string;
  /** Secret-free description of the failure that caused this state. */
  error?: string;
  /** Retry number (1 for the first retry) in `retrying`. */
  attempt?: number;
  /** Delay before that retry, in `retrying`. */
  nextRetryMs?: number;
}

export interface TelemetryDroppedEvent {
  reason: "overflow";
  policy: "drop-oldest" | "reject-new";
  /** Messages dropped since the session was made. */
  droppedTotal: number;
  outboxSize: number;
  messageId: string;
}

export interface DeviceSessionEvents {
  state: [SessionStateEvent];
  /** A desired-properties patch (incl. $version) received while connected. */
  desired: [Record<string, unknown>];
  /** The full desired document (incl. $version) after every (re)connect. */
  twin: [Record<string, unknown>];
  dropped: [TelemetryDroppedEvent];
  /** A listener of ours threw; reported here instead of crashing the SDK's callback. */
  warning: [Error];
}

interface OutboxEntry {
  message: Message;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Why a connected period ended. */
type ConnectionEnd =
  { kind: "lost"; error: Error | undefined } | { kind: "reprovision" } | { kind: "stopped" };

/**
 * How long stop() waits for the loop to wind down (the hub close inside it is bounded by closeTimeoutMs).
 * Worst case of stop(): 6 s + 4 s (link close, only if the loop did not finish) + 1.5 s (TPM) = 11.5 s,
 * inside Node-RED's 15 s.
 */
const STOP_WAIT_MS = 6_000;

export class DeviceSession extends EventEmitter<DeviceSessionEvents> {
  private stateValue: SessionState = "idle";
  private readonly config: DeviceSessionConfig;
  private readonly dependencies: SessionDependencies;
  private readonly store: RegistrationStore;
  private readonly schedule: RetrySchedule;
  private readonly outbox: Outbox<OutboxEntry>;
  private readonly telemetryAckTimeoutMs: number;
  private readonly twinTimeoutMs: number;

  private registrationId: string | undefined;
  private registration: CachedRegistration | undefined;
  private link: HubLink | undefined;
  private running = false;
  private closed = false;
  private loop: Promise<void> | undefined;
  private abort: AbortController | undefined;
  /** Wakes the loop from a retry wait or a connected period. */
  private wake: ((end: ConnectionEnd) => void) | undefined;
  private reprovisionRequested = false;
  /** The link the outbox pump is sending on; a new link gets a new pump at once. */
  private pumpingLink: HubLink | undefined;
  private desiredVersion: number | undefined;
  /** Desired patches that arrive while the twin is being fetched after a connect. */
  private pendingDesired: Array<Record<string, unknown>> | undefined;
  private reportChain: Promise<unknown> = Promise.resolve();

  constructor(config: DeviceSessionConfig, dependencies?: SessionDependencies) {
    super();
    checkConfig(config);
    this.config = config;
    const options = config.options ?? {};
    this.dependencies = dependencies ?? sdkDependencies(config);
    this.store =
      options.registrationStore ??
      (options.registrationCacheFile
        ? new JsonFileRegistrationStore(options.registrationCacheFile)
        : new MemoryRegistrationStore());
    this.schedule = new RetrySchedule(options.backoff ?? new ExponentialBackoff());
    this.outbox = new Outbox({
      capacity: options.outboxCapacity ?? DEFAULTS.outboxCapacity,
      overflow: options.outboxOverflow ?? DEFAULTS.outboxOverflow,
    });
    this.telemetryAckTimeoutMs = options.telemetryAckTimeoutMs ?? DEFAULTS.telemetryAckTimeoutMs;
    this.twinTimeoutMs = options.twinTimeoutMs ?? DEFAULTS.twinTimeoutMs;
  }

  get state(): SessionState {
    return this.stateValue;
  }

  /** The latest state as a `state` event would carry it. */
  get status(): SessionStateEvent {
    return this.describe(this.stateValue);
  }

  /** Telemetry messages waiting to be sent. */
  get outboxSize(): number {
    return this.outbox.size;
  }

  /** Telemetry messages lost to outbox overflow. */
  get droppedCount(): number {
    return this.outbox.dropped;
  }

  /** Starts (or restarts after stop() or an error state) the provision/connect loop. Idempotent. */
  start(): void {
    if (this.closed) throw new SessionStoppedError("start");
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    const signal = this.abort.signal;
    this.loop = this.run(signal).catch((error: unknown) => {
      // The loop handles its own failures; reaching here is a bug, and must still not crash the host.
      this.warn(error);
      if (this.running && canTransition(this.stateValue, "error"))
        this.enter("error", { error: describeError(error) });
      this.running = false;
    });
  }

  /**
   * Drops the cached registration and registers with DPS again (e.g. after the enrollment moved to another
   * hub). Starts the session when it is not running.
   */
  reprovision(): void {
    if (this.closed) throw new SessionStoppedError("reprovision");
    // Already registering: the registration under way is the new one.
    if (this.running && this.stateValue === "provisioning") return;
    this.reprovisionRequested = true;
    this.registration = undefined;
    if (!this.running) {
      this.start();
      return;
    }
    this.wake?.({ kind: "reprovision" });
  }

  /**
   * Stops the loop and releases the hub connection, the TPM connection, every timer and listener.
   * Pending telemetry and twin operations are rejected with SessionStoppedError. Bounded to well under 15 s.
   */
  async stop(): Promise<void> {
    const loop = this.loop;
    this.running = false;
    this.abort?.abort();
    this.wake?.({ kind: "stopped" });
    if (loop) await raceTimer(loop, STOP_WAIT_MS);
    this.loop = undefined;
    const link = this.link;
    this.link = undefined;
    if (link) await raceTimer(link.close(), DEFAULTS.closeTimeoutMs);
    for (const entry of this.outbox.drain()) entry.reject(new SessionStoppedError("telemetry"));
    await raceTimer(this.dependencies.dispose(), 1_500);
    if (this.stateValue !== "idle") this.enter("idle", {});
  }

  /** stop() for good: the session cannot be started again. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  /**
   * Queues one telemetry message; resolves when IoT Hub accepted it. While disconnected the message waits in
   * the outbox (bounded) and is sent after the reconnect, in order. Rejects with ValidationError for a
   * message the hub would refuse, OutboxOverflowError when it was dropped, OperationTimeoutError when the hub
   * did not accept it in time, HubError when the hub refused it.
   */
  sendTelemetry(payload: TelemetryPayload, options: TelemetryOptions = {}): Promise<void> {
    if (this.closed) return Promise.reject(new SessionStoppedError("telemetry"));
    let message: Message;
    try {
      message = toHubMessage(payload, options);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return new Promise<void>((resolve, reject) => {
      const entry: OutboxEntry = { message, resolve, reject };
      const pushed = this.outbox.push(entry);
      if (!pushed.accepted) {
        this.reportDrop(message);
        reject(new OutboxOverflowError("reject-new", this.outbox.capacity));
        return;
      }
      if (pushed.dropped) {
        this.reportDrop(pushed.dropped.message);
        pushed.dropped.reject(new OutboxOverflowError("drop-oldest", this.outbox.capacity));
      }
      this.pump();
    });
  }

  /** The full twin ({desired, reported}, each with $version). Waits for a connection up to the twin timeout. */
  async getTwin(): Promise<TwinDocument> {
    const deadline = Date.now() + this.twinTimeoutMs;
    const link = await this.connectedLink("twin GET", deadline);
    return this.twinCall(link, () => link.getTwin(), "twin GET", deadline);
  }

  /**
   * Sends a reported-properties patch; resolves with the reported `$version` after it. Patches are sent one
   * after the other so that each gets its own version. Waits for a connection up to the twin timeout.
   */
  reportProperties(patch: Record<string, unknown>): Promise<number> {
    try {
      validateTwinPatch(patch);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const run = async (): Promise<number> => {
      const deadline = Date.now() + this.twinTimeoutMs;
      const link = await this.connectedLink("reported properties update", deadline);
      await this.twinCall(link, () => link.updateReported(patch), "reported properties update", deadline);
      // The SDK drops the version the hub returns with the PATCH; only the device writes reported
      // properties, so reading it back right after our own (serialised) patch gives that patch's version.
      const twin = await this.twinCall(link, () => link.getTwin(), "reported properties update", deadline);
      const version = twin.reported.$version;
      if (typeof version !== "number") {
        throw new HubError(
          "the hub returned reported properties without $version",
          this.registration?.deviceId ?? "",
        );
      }
      return version;
    };
    const result = this.reportChain.then(run, run);
    this.reportChain = result.catch(() => undefined);
    return result;
  }

  // ---------------------------------------------------------------------------------------------------
  // The loop

  private async run(signal: AbortSignal): Promise<void> {
    const idScope = this.config.dps.idScope.trim();
    const alive = (): boolean => this.running && !signal.aborted;
    let cacheChecked = false;

    while (alive()) {
      // 1. A registration: the cached one, or a new one from DPS.
      let fresh = false;
      if (!this.registrationId || (!cacheChecked && !this.reprovisionRequested)) {
        try {
          this.registrationId ??= await this.dependencies.registrationId();
        } catch (error) {
          // Reading the registration id may need the TPM; a failure there is a provisioning failure.
          if (!alive()) return;
          if (this.stateValue !== "provisioning") this.enter("provisioning", {});
          if (!(await this.failedOrRetry(error, signal))) return;
          continue;
        }
        if (!alive()) return;
        if (!this.reprovisionRequested) {
          this.registration ??= await this.store
            .load(this.registrationId, idScope)
            .catch((error: unknown) => {
              this.warn(error);
              return undefined;
            });
        }
        cacheChecked = true;
        if (!alive()) return;
      }
      const registrationId = this.registrationId;
      if (!this.registration || this.reprovisionRequested) {
        this.reprovisionRequested = false;
        this.registration = undefined;
        if (this.stateValue !== "provisioning") this.enter("provisioning", {});
        await this.store.clear(registrationId, idScope).catch((error: unknown) => this.warn(error));
        try {
          const identity = await this.dependencies.provision(signal);
          if (!alive()) return;
          this.registration = { ...identity, idScope };
          fresh = true;
          await this.store.save(this.registration).catch((error: unknown) => this.warn(error));
          if (!alive()) return;
          this.enter("provisioned", {});
        } catch (error) {
          if (!alive()) return;
          if (this.reprovisionRequested) continue;
          if (!(await this.failedOrRetry(error, signal))) return;
          continue;
        }
      } else if (this.stateValue !== "retrying") {
        // From idle, error or a cache hit during provisioning: the cached registration stands.
        this.enter("provisioned", {});
      }

      // 2. The hub connection.
      const registration = this.registration;
      this.enter("connecting", {});
      let link: HubLink;
      try {
        link = await this.dependencies.connect(registration, signal);
      } catch (error) {
        if (!alive()) return;
        if (this.reprovisionRequested) continue;
        if (isIdentityRejected(error)) {
          if (fresh) {
            // DPS just assigned this identity and the hub still refuses it: registering again would only
            // load DPS (peers-and-conventions.md §5.2). Needs a look at the enrollment.
            this.fail(error);
            return;
          }
          // The cached registration is stale (device deleted or moved): register again.
          this.reprovisionRequested = true;
          continue;
        }
        if (!(await this.failedOrRetry(error, signal))) return;
        continue;
      }
      if (!alive() || this.reprovisionRequested) {
        await link.close();
        if (!alive()) return;
        continue;
      }

      // 3. Connected: follow the twin, flush the outbox, and wait for the end of the connection.
      const end = await this.stayConnected(link, signal);
      this.link = undefined;
      await link.close();
      if (end.kind === "stopped" || !alive()) return;
      if (end.kind === "reprovision") continue;
      if (end.error && isIdentityRejected(end.error)) this.reprovisionRequested = true;
      // A failure while fetching the twin after connecting never reached `connected`: retry from `connecting`.
      if (this.stateValue === "connected") {
        this.enter("disconnected", end.error ? { error: describeError(end.error) } : {});
      }
      if (!(await this.retryAfter(end.error, signal))) return;
    }
  }

  /** A permanent failure ends the loop in `error`; anything else waits the backoff delay. False: stop looping. */
  private async failedOrRetry(error: unknown, signal: AbortSignal): Promise<boolean> {
    if (!isRetryable(error)) {
      this.fail(error);
      return false;
    }
    return this.retryAfter(error, signal);
  }

  private fail(error: unknown): void {
    this.running = false;
    this.enter("error", { error: describeError(error) });
  }

  /** Runs one connected period; resolves with why it ended. The link's listeners go with the link. */
  private async stayConnected(link: HubLink, signal: AbortSignal): Promise<ConnectionEnd> {
    const ended = new Promise<ConnectionEnd>((resolve) => {
      this.wake = resolve;
    });
    link.on("disconnect", (error) => this.connectionFailed(link, error));
    link.on("desired", (patch) => this.onDesired(patch));
    this.link = link;
    try {
      // Subscribe first, then GET: a change made between the two arrives as a patch, and patches not newer
      // than the GET are dropped. The SDK itself never GETs again after a reconnect (hub-amqp-protocol.md §4.5).
      this.pendingDesired = [];
      const deadline = Date.now() + this.twinTimeoutMs;
      await withDeadline(
        link.enableDesiredUpdates(),
        "desired properties subscribe",
        this.twinTimeoutMs,
        signal,
      );
      const twin = await withDeadline(link.getTwin(), "twin GET", Math.max(1, deadline - Date.now()), signal);
      if (!this.running || signal.aborted) return { kind: "stopped" };
      this.desiredVersion = versionOf(twin.desired);
      const buffered = this.pendingDesired;
      this.pendingDesired = undefined;
      this.enter("connected", {});
      this.schedule.reset();
      this.safeEmit("twin", twin.desired);
      for (const patch of buffered) this.onDesired(patch);
    } catch (error) {
      this.pendingDesired = undefined;
      this.connectionFailed(link, error instanceof Error ? error : new Error(String(error)));
    }
    this.pump();
    if (this.reprovisionRequested) this.wake?.({ kind: "reprovision" });
    const end = await ended;
    this.wake = undefined;
    return end;
  }

  /** Waits the backoff delay in `retrying`; false when the session stopped meanwhile. */
  private async retryAfter(error: unknown, signal: AbortSignal): Promise<boolean> {
    const { attempt, delayMs } = this.schedule.next(error !== undefined && isThrottled(error));
    this.enter("retrying", {
      attempt,
      nextRetryMs: delayMs,
      ...(error !== undefined ? { error: describeError(error) } : {}),
    });
    const end = await new Promise<ConnectionEnd | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(undefined);
      }, delayMs);
      this.wake = (reason) => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(reason);
      };
      if (signal.aborted) this.wake({ kind: "stopped" });
    });
    return this.running && !signal.aborted && end?.kind !== "stopped";
  }

  // ---------------------------------------------------------------------------------------------------
  // Telemetry

  /**
   * Sends outbox messages one at a time, in order, while connected. One pump per link: a send still
   * pending on a dropped link does not hold up the new link.
   */
  private pump(): void {
    const link = this.link;
    if (!link || this.pumpingLink === link || this.stateValue !== "connected") return;
    this.pumpingLink = link;
    void this.pumpLoop(link).finally(() => {
      if (this.pumpingLink === link) this.pumpingLink = undefined;
      // Messages queued while the last send was finishing, on a link that is still up.
      if (this.stateValue === "connected" && this.link && this.outbox.size > 0) this.pump();
    });
  }

  private async pumpLoop(link: HubLink): Promise<void> {
    while (this.stateValue === "connected" && this.link === link) {
      const entry = this.outbox.shift();
      if (!entry) return;
      try {
        await withDeadline(
          link.sendEvent(entry.message),
          "telemetry",
          this.telemetryAckTimeoutMs,
          this.abort?.signal,
        );
        entry.resolve();
      } catch (error) {
        if (error instanceof SessionStoppedError) {
          entry.reject(error);
          return;
        }
        if (error instanceof OperationTimeoutError) {
          // The hub may still have it, so it is not sent again; an ack that never comes means a dead link
          // (the SDK has no timeout for dispositions, hub-amqp-protocol.md §6.4), so reconnect.
          entry.reject(error);
          this.connectionFailed(link, error);
          return;
        }
        if (isRetryable(error) || isIdentityRejected(error)) {
          const displaced = this.outbox.requeue(entry);
          if (displaced) {
            this.reportDrop(displaced.message);
            displaced.reject(new OutboxOverflowError(this.outbox.overflow, this.outbox.capacity));
          }
          this.connectionFailed(link, error instanceof Error ? error : new Error(String(error)));
          return;
        }
        entry.reject(
          new HubError(
            `IoT Hub refused the telemetry message: ${describeError(error)}`,
            this.registration?.deviceId ?? "",
            {
              cause: error,
            },
          ),
        );
      }
    }
  }

  private reportDrop(message: Message): void {
    this.safeEmit("dropped", {
      reason: "overflow",
      policy: this.outbox.overflow,
      droppedTotal: this.outbox.dropped,
      outboxSize: this.outbox.size,
      messageId: message.messageId,
    });
  }

  // ---------------------------------------------------------------------------------------------------
  // Twin

  private onDesired(patch: Record<string, unknown>): void {
    if (this.pendingDesired) {
      this.pendingDesired.push(patch);
      return;
    }
    const version = versionOf(patch);
    if (version !== undefined && this.desiredVersion !== undefined && version <= this.desiredVersion) return;
    if (version !== undefined) this.desiredVersion = version;
    this.safeEmit("desired", patch);
  }

  /** The current link once connected; rejects at the deadline or when the session stops. */
  private connectedLink(operation: string, deadline: number): Promise<HubLink> {
    if (this.closed) return Promise.reject(new SessionStoppedError(operation));
    if (this.stateValue === "connected" && this.link) return Promise.resolve(this.link);
    return new Promise<HubLink>((resolve, reject) => {
      const onState = (event: SessionStateEvent): void => {
        if (event.state === "connected" && this.link) {
          cleanup();
          resolve(this.link);
        } else if (event.state === "idle" || event.state === "error") {
          cleanup();
          reject(new SessionStoppedError(operation));
        }
      };
      const timeoutMs = Math.max(1, deadline - Date.now());
      const timer = setTimeout(() => {
        cleanup();
        reject(new OperationTimeoutError(operation, this.twinTimeoutMs));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off("state", onState);
      };
      this.on("state", onState);
    });
  }

  private async twinCall<T>(
    link: HubLink,
    call: () => Promise<T>,
    operation: string,
    deadline: number,
  ): Promise<T> {
    try {
      return await withDeadline(call(), operation, Math.max(1, deadline - Date.now()), this.abort?.signal);
    } catch (error) {
      // No twin answer means the twin response link is gone (a clean detach silently stops it,
      // hub-amqp-protocol.md §6.2): reconnect.
      if (error instanceof SessionStoppedError) throw error;
      if (error instanceof OperationTimeoutError) this.connectionFailed(link, error);
      throw error instanceof OperationTimeoutError
        ? new OperationTimeoutError(operation, this.twinTimeoutMs)
        : new HubError(`${operation} failed: ${describeError(error)}`, this.registration?.deviceId ?? "", {
            cause: error,
          });
    }
  }

  /**
   * Ends the connected period of `link` (if it is still the current one) so the loop reconnects. The link
   * stops being current at once, so no new send or twin request goes to it meanwhile.
   */
  private connectionFailed(link: HubLink, error: Error | undefined): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.wake?.({ kind: "lost", error });
  }

  // ---------------------------------------------------------------------------------------------------
  // State and events

  private enter(
    state: SessionState,
    details: Pick<SessionStateEvent, "error" | "attempt" | "nextRetryMs">,
  ): void {
    assertTransition(this.stateValue, state);
    this.stateValue = state;
    this.safeEmit("state", { ...this.describe(state), ...details });
  }

  private describe(state: SessionState): SessionStateEvent {
    return {
      state,
      ...(this.registrationId ? { registrationId: this.registrationId } : {}),
      ...(this.registration
        ? { deviceId: this.registration.deviceId, hub: this.registration.assignedHub }
        : {}),
    };
  }

  /** Emits without letting a throwing listener unwind into the SDK's (or our loop's) call stack. */
  private safeEmit<E extends keyof DeviceSessionEvents>(event: E, ...args: DeviceSessionEvents[E]): void {
    try {
      (this.emit as (event: E, ...args: DeviceSessionEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      if (event !== "warning") this.warn(error);
    }
  }

  private warn(error: unknown): void {
    if (this.listenerCount("warning") === 0) return;
    this.safeEmit("warning", error instanceof Error ? error : new Error(String(error)));
  }
}

function versionOf(section: Record<string, unknown>): number | undefined {
  const version = section.$version;
  return typeof version === "number" ? version : undefined;
}

/** Waits for `promise` but at most `ms`; never rejects (stop() must finish). */
async function raceTimer(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
