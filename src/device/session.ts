// DeviceSession: provision -> connect -> connected, and back after any fault, for one device. Framework-free:
// a plain script or a Node-RED config node owns one. Three parts beside each other (docs/architecture.md
// "Device session"): the lifecycle (states.ts + lifecycle.ts, one phase function per state), the telemetry
// pump (telemetry-pump.ts) and the twin sync (twin-sync.ts). A retry policy decides what a failure means.
import { EventEmitter } from "node:events";
import type { Message } from "azure-iot-device";
import { ExponentialBackoff } from "./backoff.js";
import { DEFAULTS, type DeviceSessionConfig } from "./config.js";
import { aborted, settleWithin, sleep, withDeadline } from "./deadline.js";
import { checkConfig, sdkDependencies, type SessionDependencies } from "./dependencies.js";
import { HubError, OperationTimeoutError, SessionStoppedError, TelemetryKeptError } from "./errors.js";
import type { HubLink, TwinDocument } from "./hub-connection.js";
import { Lifecycle, type SessionEvent } from "./lifecycle.js";
import { toHubMessage, type TelemetryOptions, type TelemetryPayload } from "./message-mapping.js";
import {
  JsonFileRegistrationStore,
  MemoryRegistrationStore,
  type CachedRegistration,
  type RegistrationStore,
} from "./registration-store.js";
import { DefaultRetryPolicy, RetryCounter, type RetryPolicy } from "./retry-policy.js";
import { describeError } from "./retryable.js";
import type { SessionState } from "./states.js";
import { TelemetryPump, type TelemetryOutcome, type TelemetryPause } from "./telemetry-pump.js";
import { OutboxLog } from "./outbox-log.js";
import { DEFAULT_BOUNDS } from "./outbox.js";
import { ReportBatcher, type ReportedPatch } from "./report-batcher.js";
import { TwinSync } from "./twin-sync.js";
import { validateTwinPatch } from "./validation.js";
import { MethodDispatcher, type MethodHandler, type MethodRegistration } from "./method-dispatcher.js";
import { C2dInbox, DEFAULT_C2D_HOLD_MS, type C2dOutcome, type CloudMessageHandler } from "./c2d-inbox.js";

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

export type { TelemetryPause };

export interface DeviceSessionEvents {
  state: [SessionStateEvent];
  /** A desired-properties patch (incl. $version) received while connected. */
  desired: [Record<string, unknown>];
  /** The full desired document (incl. $version) after every (re)connect. */
  twin: [Record<string, unknown>];
  dropped: [TelemetryDroppedEvent];
  /** The hub throttled or refused telemetry for now: messages wait (none is dropped) until `resumed`. */
  paused: [TelemetryPause];
  resumed: [];
  /** close() found telemetry not yet accepted by the hub and rejected it (count). */
  unsent: [number];
  /** close() left telemetry not yet accepted in the outbox on disk, for the next session (count). */
  kept: [number];
  /** A direct-method call no handler takes was answered 404 (method name). */
  methodNotImplemented: [string];
  /** A listener of ours threw, or a phase failed unexpectedly; reported here instead of crashing. */
  warning: [Error];
}

type Registration = CachedRegistration & {
  /** Assigned by DPS in this run (not from the cache): a hub refusal then is not a stale cache. */
  fresh?: boolean;
};

/** How long the stopping phase gives the TPM connection to close. */
const DISPOSE_TIMEOUT_MS = 1_500;

export class DeviceSession extends EventEmitter<DeviceSessionEvents> {
  private readonly config: DeviceSessionConfig;
  private readonly dependencies: SessionDependencies;
  private readonly store: RegistrationStore;
  private readonly policy: RetryPolicy;
  private readonly retries: RetryCounter;
  private readonly lifecycle: Lifecycle;
  private readonly pump: TelemetryPump;
  private readonly twin: TwinSync;
  private readonly twinTimeoutMs: number;
  private readonly idScope: string;
  /** Where the hub identity comes from: DPS (cached, registered again when refused) or the configuration. */
  private readonly identitySource: "dps" | "direct";

  private registrationId: string | undefined;
  private registration: Registration | undefined;
  /** The hub connection of `connecting`/`connected`, and the scope that ends when it fails or is dropped. */
  private link: HubLink | undefined;
  private linkScope: AbortController | undefined;
  private linkClosing: Promise<void> = Promise.resolve();
  private retryDelayMs = 0;
  private readonly outboxLog: OutboxLog | undefined;
  private readonly reports = new ReportBatcher((patch) => this.sendReport(patch));
  /** Direct-method handlers and the calls waiting for their answers; handlers outlive every connection. */
  private readonly methods = new MethodDispatcher({
    warning: (error) => this.warn(error),
    notImplemented: (methodName) => this.safeEmit("methodNotImplemented", methodName),
  });
  /** Cloud-to-device handlers and unsettled deliveries; handlers outlive every connection. */
  private readonly inbox: C2dInbox;
  /**
   * The reported $version on `link` as far as the device knows it: read with the twin at connect, then one more
   * per PATCH (only the device writes reported properties, and the hub answers a PATCH without the version the
   * SDK would pass on, docs/hub-amqp-protocol.md). Unknown after a PATCH that failed: then read back.
   */
  private reportedVersion: { link: HubLink; version: number } | undefined;

  constructor(config: DeviceSessionConfig, dependencies?: SessionDependencies) {
    super();
    checkConfig(config);
    this.config = config;
    const options = config.options ?? {};
    this.dependencies = dependencies ?? sdkDependencies(config);
    this.idScope = config.dps?.idScope.trim() ?? "";
    this.identitySource = config.hub?.direct ? "direct" : "dps";
    // Known from the configuration except for a TPM that derives it from its endorsement key.
    this.registrationId = config.attestation.registrationId;
    this.store =
      options.registrationStore ??
      (options.registrationCacheFile
        ? new JsonFileRegistrationStore(options.registrationCacheFile)
        : new MemoryRegistrationStore());
    this.policy = options.retryPolicy ?? new DefaultRetryPolicy(options.backoff ?? new ExponentialBackoff());
    this.retries = new RetryCounter(this.policy);
    this.twinTimeoutMs = options.twinTimeoutMs ?? DEFAULTS.twinTimeoutMs;
    this.inbox = new C2dInbox(
      { warning: (error) => this.warn(error) },
      options.cloudMessageHoldMs ?? DEFAULT_C2D_HOLD_MS,
    );
    this.twin = new TwinSync({
      twin: (desired) => this.safeEmit("twin", desired),
      desired: (patch) => this.safeEmit("desired", patch),
    });
    this.outboxLog = options.outboxFile ? new OutboxLog(options.outboxFile) : undefined;
    const bounds = this.outboxLog ? DEFAULT_BOUNDS.disk : DEFAULT_BOUNDS.memory;
    this.pump = new TelemetryPump({
      log: this.outboxLog,
      maxMessages: options.outboxMaxMessages ?? options.outboxCapacity ?? bounds.maxMessages,
      maxBytes: options.outboxMaxBytes ?? bounds.maxBytes,
      overflow: options.outboxOverflow ?? DEFAULTS.outboxOverflow,
      window: options.telemetryWindow ?? DEFAULTS.telemetryWindow,
      ackTimeoutMs: options.telemetryAckTimeoutMs ?? DEFAULTS.telemetryAckTimeoutMs,
      policy: this.policy,
      deviceId: () => this.registration?.deviceId ?? "",
      linkFailed: (link, error) => this.linkFailed(link, error),
      paused: (pause) => this.safeEmit("paused", pause),
      resumed: () => this.safeEmit("resumed"),
      dropped: (drop) => this.safeEmit("dropped", { reason: "overflow", ...drop }),
    });
    this.lifecycle = new Lifecycle(
      {
        provisioning: (signal, enteredBy) => this.provisionPhase(signal, enteredBy),
        provisioned: () => Promise.resolve({ type: "connect" }),
        connecting: (signal) => this.connectPhase(signal),
        connected: (signal) => this.connectedPhase(signal),
        disconnected: (_signal, enteredBy) => Promise.resolve({ type: "retry", error: enteredBy.error }),
        retrying: (signal) => this.retryPhase(signal),
        stopping: () => this.stopPhase(),
      },
      {
        entered: (state, event) => this.entered(state, event),
        phaseFailed: (_state, error) => this.warn(error),
      },
    );
  }

  get state(): SessionState {
    return this.lifecycle.state;
  }

  /** The latest state as a `state` event would carry it. */
  get status(): SessionStateEvent {
    return this.describe(this.lifecycle.state);
  }

  /** Telemetry messages not yet accepted by the hub (waiting or in flight). */
  get outboxSize(): number {
    return this.pump.size;
  }

  /** Their bytes, as the outbox bounds count them. */
  get outboxBytes(): number {
    return this.pump.bytes;
  }

  /** Telemetry messages held in memory now (with the outbox on disk, the rest waits there). */
  get outboxInMemory(): number {
    return this.pump.inMemory;
  }

  /** Damaged records (a torn line after a kill, a CRC mismatch) the outbox on disk skipped when it was opened. */
  get outboxCorruptRecords(): number {
    return this.outboxLog?.corruptRecords ?? 0;
  }

  /** Telemetry messages lost to outbox overflow (dropped or refused). */
  get droppedCount(): number {
    return this.pump.droppedCount;
  }

  /**
   * Telemetry messages that were in flight when a send failed or the link went, and were sent again with the
   * same messageId: the most copies the hub can have seen twice.
   */
  get resentCount(): number {
    return this.pump.resentCount;
  }

  /** Starts (or restarts after stop() or an error) provisioning and connecting. Idempotent. */
  start(): void {
    if (this.state === "closed") throw new SessionStoppedError("start");
    this.lifecycle.dispatch({ type: "start" });
  }

  /**
   * Drops the cached registration and registers with DPS again (e.g. after the enrollment moved to another
   * hub). Starts the session when it is not running.
   */
  reprovision(): void {
    if (this.state === "closed") throw new SessionStoppedError("reprovision");
    this.lifecycle.dispatch({ type: "reprovision" });
  }

  /**
   * Releases the hub connection, the TPM connection, every timer and listener; resolves once `idle` (bounded,
   * well under Node-RED's 15 s). Telemetry waits in the outbox for the next start(). A start() made before
   * this resolves is carried out once stopped.
   */
  stop(): Promise<void> {
    const state = this.state;
    if (state === "idle" || state === "closed") return Promise.resolve();
    const stopped = this.whenState(["idle", "closed"]);
    this.lifecycle.dispatch({ type: "stop" });
    return stopped;
  }

  /** stop() for good: the session cannot be started again; telemetry not yet accepted is rejected. */
  async close(): Promise<void> {
    if (this.state !== "closed") {
      const closed = this.whenState(["closed"]);
      this.lifecycle.dispatch({ type: "close" });
      await closed;
    }
    this.inbox.clear();
    if (this.outboxLog) {
      const kept = this.pump.rejectAll(new TelemetryKeptError());
      if (kept > 0) this.safeEmit("kept", kept);
    } else {
      const unsent = this.pump.rejectAll(new SessionStoppedError("telemetry"));
      if (unsent > 0) this.safeEmit("unsent", unsent);
    }
    this.outboxLog?.close();
  }

  /**
   * Queues one telemetry message; resolves "accepted" when IoT Hub accepted it, or at once "stored" when the
   * outbox is on disk and the message went there beyond the in-memory window (sent later, in order). While
   * disconnected the message waits in the outbox (bounded) and is sent after the reconnect. Rejects with
   * ValidationError for a message the hub would refuse, OutboxOverflowError when it was dropped, HubError when
   * the hub refused it for what it is, SessionStoppedError when the session closed first.
   */
  sendTelemetry(payload: TelemetryPayload, options: TelemetryOptions = {}): Promise<TelemetryOutcome> {
    if (this.state === "closed") return Promise.reject(new SessionStoppedError("telemetry"));
    let message: Message;
    try {
      message = toHubMessage(payload, options);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.pump.enqueue(message);
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
    return this.reports.report(patch);
  }

  /**
   * Takes direct-method calls: those named in `registration.names`, or (without names) every call no named
   * handler takes. A call nobody handles is answered 404 at once; one the handler does not answer (with
   * respondToMethod) within its response timeout is answered 504. Kept across reconnects; returns the
   * function that removes the handler.
   */
  handleMethods(handler: MethodHandler, registration?: MethodRegistration): () => void {
    const remove = this.methods.register(handler, registration);
    this.applyCommandsInBackground();
    return remove;
  }

  /**
   * Answers a waiting method call. Rejects with ValidationError for an answer IoT Hub would refuse (not
   * JSON-serialisable, over 128 KB, a bad status; the call keeps waiting), MethodCallNotWaitingError for an
   * unknown, answered or expired requestId, HubError when the answer could not be sent.
   */
  respondToMethod(requestId: string, status: number, payload: unknown): Promise<void> {
    return this.methods.respond(requestId, status, payload);
  }

  /**
   * Takes cloud-to-device messages (the first handler registered gets them); each stays unsettled until
   * settleCloudMessage. Messages that arrive with no handler are held a while for one, then abandoned (the
   * hub delivers them again). Kept across reconnects; returns the function that removes the handler.
   */
  receiveCloudMessages(handler: CloudMessageHandler): () => void {
    const remove = this.inbox.register(handler);
    this.applyCommandsInBackground();
    return remove;
  }

  /** Completes, abandons or rejects a delivered message by its lock token. */
  settleCloudMessage(lockToken: string, outcome: C2dOutcome): Promise<void> {
    return this.inbox.settle(lockToken, outcome);
  }

  /** One PATCH (of one or more merged reports); resolves with the reported $version it produced. */
  private async sendReport(patch: ReportedPatch): Promise<number> {
    const operation = "reported properties update";
    const deadline = Date.now() + this.twinTimeoutMs;
    const link = await this.connectedLink(operation, deadline);
    const known = this.reportedVersion?.link === link ? this.reportedVersion.version : undefined;
    this.reportedVersion = undefined;
    await this.twinCall(link, () => link.updateReported(patch), operation, deadline);
    let version = known === undefined ? undefined : known + 1;
    if (version === undefined) {
      // Not known (a PATCH failed since the twin was read): read it back once, right after our own PATCH.
      const twin = await this.twinCall(link, () => link.getTwin(), operation, deadline);
      version = numericVersion(twin.reported.$version, this.registration?.deviceId ?? "");
    }
    if (this.link === link) this.reportedVersion = { link, version };
    return version;
  }

  // ---------------------------------------------------------------------------------------------------
  // Phases: each does one state's work and returns the event that ends it.

  private async provisionPhase(signal: AbortSignal, enteredBy: SessionEvent): Promise<SessionEvent> {
    try {
      if (this.identitySource === "direct") {
        // Nothing to register, cache or forget: the configured identity comes back at once.
        this.registration = { ...(await this.dependencies.provision(signal)), idScope: "" };
        return signal.aborted ? { type: "stop" } : { type: "provisioned" };
      }
      this.registrationId ??= await this.dependencies.registrationId();
      if (enteredBy.type === "reprovision" || enteredBy.type === "identity-rejected") {
        await this.forgetRegistration();
      }
      if (signal.aborted) return { type: "stop" };
      this.registration ??= await this.store
        .load(this.registrationId, this.idScope)
        .catch((error: unknown) => {
          this.warn(error);
          return undefined;
        });
      if (this.registration) return { type: "provisioned" };
      const identity = await this.dependencies.provision(signal);
      if (signal.aborted) return { type: "stop" };
      const registration: Registration = { ...identity, idScope: this.idScope };
      await this.store.save(registration).catch((error: unknown) => this.warn(error));
      this.registration = { ...registration, fresh: true };
      return { type: "provisioned" };
    } catch (error) {
      return this.policy.classify(error) === "stop" ? { type: "fatal", error } : { type: "retry", error };
    }
  }

  private async connectPhase(signal: AbortSignal): Promise<SessionEvent> {
    const registration = this.registration;
    if (!registration) return { type: "retry" };
    let link: HubLink;
    try {
      link = await this.dependencies.connect(registration, signal);
    } catch (error) {
      return this.connectFailure(error, registration, signal);
    }
    if (signal.aborted) {
      void link.close();
      return { type: "stop" };
    }
    const scope = this.adopt(link);
    try {
      const twin = await this.twin.sync(link, this.twinTimeoutMs, AbortSignal.any([signal, scope.signal]));
      const version = twin.reported.$version;
      this.reportedVersion = typeof version === "number" ? { link, version } : undefined;
      await withDeadline(
        this.applyCommands(link),
        "direct methods subscribe",
        this.twinTimeoutMs,
        AbortSignal.any([signal, scope.signal]),
      );
    } catch (error) {
      return this.connectFailure(error, registration, signal);
    }
    return { type: "connected" };
  }

  private async connectedPhase(signal: AbortSignal): Promise<SessionEvent> {
    const link = this.link;
    const scope = this.linkScope;
    if (!link || !scope) return { type: "link-lost" };
    this.retries.reset();
    this.twin.announce();
    this.pump.attach(link);
    const error = await aborted(AbortSignal.any([signal, scope.signal]));
    if (signal.aborted) return { type: "stop" };
    return this.policy.classify(error) === "reprovision" && this.identitySource === "dps"
      ? { type: "identity-rejected", error }
      : { type: "link-lost", error };
  }

  private async retryPhase(signal: AbortSignal): Promise<SessionEvent> {
    await sleep(this.retryDelayMs, signal);
    return this.registration ? { type: "retry-connect" } : { type: "retry-provision" };
  }

  private async stopPhase(): Promise<SessionEvent> {
    await this.linkClosing;
    await settleWithin(this.dependencies.dispose(), DISPOSE_TIMEOUT_MS);
    return { type: "stopped" };
  }

  /** What a failed connect means: stop, register again at once, or retry after a delay. */
  private async connectFailure(
    error: unknown,
    registration: Registration,
    signal: AbortSignal,
  ): Promise<SessionEvent> {
    // A stopped session leaves the cache alone: a session started in its place may already be using it.
    if (signal.aborted) return { type: "stop" };
    switch (this.policy.classify(error)) {
      case "stop":
        return { type: "fatal", error };
      case "reprovision":
        // A configured identity has nothing to register again: retry it after the delay.
        if (this.identitySource === "direct") return { type: "retry", error };
        if (!registration.fresh) return { type: "identity-rejected", error };
        // DPS has just assigned this identity and the hub still refuses it: register again, but only after
        // the backoff delay, so a hub that refuses for a while does not turn into a DPS registration loop.
        await this.forgetRegistration();
        return { type: "retry", error };
      case "retry":
        return { type: "retry", error };
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // The hub link

  /** Makes `link` the current one; its scope ends (with the error) when the link fails or is dropped. */
  private adopt(link: HubLink): AbortController {
    const scope = new AbortController();
    this.link = link;
    this.linkScope = scope;
    link.on("disconnect", (error) =>
      this.linkFailed(link, error ?? new HubError("the hub connection ended", this.deviceId)),
    );
    link.on("desired", (patch) => this.twin.onDesired(patch));
    link.on("method", (call) => this.methods.dispatch(call, link));
    link.on("cloudMessage", (message) => this.inbox.deliver(message, link));
    return scope;
  }

  /** Tells a link what the handlers need: C2D receiving, and the method names (plus the catch-all). */
  private applyCommands(link: HubLink): Promise<void> {
    if (this.inbox.listening) link.receiveCloudMessages();
    return this.methods.listening ? link.enableMethods(this.methods.names) : Promise.resolve();
  }

  /** A handler registered while a link is up: that link learns it now, later links at connect. */
  private applyCommandsInBackground(): void {
    const link = this.link;
    const scope = this.linkScope;
    if (!link || !scope || scope.signal.aborted) return;
    withDeadline(
      this.applyCommands(link),
      "direct methods subscribe",
      this.twinTimeoutMs,
      scope.signal,
    ).catch((error: unknown) => {
      if (error instanceof SessionStoppedError || scope.signal.aborted) return;
      this.linkFailed(link, error instanceof Error ? error : new Error(String(error)));
    });
  }

  private linkFailed(link: HubLink, error: Error): void {
    if (this.link !== link || !this.linkScope || this.linkScope.signal.aborted) return;
    this.pump.detach();
    this.methods.forget(link);
    this.inbox.forget(link);
    this.linkScope.abort(error);
  }

  /** Leaves the current link: telemetry in flight goes back to the outbox; the close runs in the background. */
  private dropLink(): void {
    const link = this.link;
    this.pump.detach();
    if (link) {
      this.methods.forget(link);
      this.inbox.forget(link);
    }
    this.link = undefined;
    if (this.linkScope && !this.linkScope.signal.aborted) {
      this.linkScope.abort(new SessionStoppedError("hub connection"));
    }
    this.linkScope = undefined;
    if (link) this.linkClosing = settleWithin(link.close(), DEFAULTS.closeTimeoutMs);
  }

  private async forgetRegistration(): Promise<void> {
    this.registration = undefined;
    if (this.registrationId) {
      await this.store.clear(this.registrationId, this.idScope).catch((error: unknown) => this.warn(error));
    }
  }

  private get deviceId(): string {
    return this.registration?.deviceId ?? "";
  }

  // ---------------------------------------------------------------------------------------------------
  // Twin requests

  /** The current link once connected; rejects at the deadline or when the session stops. */
  private connectedLink(operation: string, deadline: number): Promise<HubLink> {
    if (this.state === "closed") return Promise.reject(new SessionStoppedError(operation));
    if (this.state === "connected" && this.link) return Promise.resolve(this.link);
    return new Promise<HubLink>((resolve, reject) => {
      const onState = (event: SessionStateEvent): void => {
        if (event.state === "connected" && this.link) {
          cleanup();
          resolve(this.link);
        } else if (event.state === "idle" || event.state === "error" || event.state === "closed") {
          cleanup();
          reject(new SessionStoppedError(operation));
        }
      };
      const timer = setTimeout(
        () => {
          cleanup();
          reject(new OperationTimeoutError(operation, this.twinTimeoutMs));
        },
        Math.max(1, deadline - Date.now()),
      );
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
    const scope = this.linkScope;
    // A stop() between the wait for the link and this call has dropped the link: nothing would answer.
    if (this.link !== link || !scope) throw new SessionStoppedError(operation);
    try {
      return await withDeadline(call(), operation, Math.max(1, deadline - Date.now()), scope.signal);
    } catch (error) {
      if (error instanceof SessionStoppedError) throw error;
      // No twin answer means the twin response link is gone (a clean detach silently stops it,
      // docs/hub-amqp-protocol.md §6.2): reconnect.
      if (error instanceof OperationTimeoutError) {
        this.linkFailed(link, error);
        throw new OperationTimeoutError(operation, this.twinTimeoutMs);
      }
      throw new HubError(`${operation} failed: ${describeError(error)}`, this.deviceId, { cause: error });
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // State and events

  private entered(state: SessionState, event: SessionEvent): void {
    if (state !== "connecting" && state !== "connected") this.dropLink();
    const details: Pick<SessionStateEvent, "error" | "attempt" | "nextRetryMs"> = {};
    if (event.error !== undefined) details.error = describeError(event.error);
    if (state === "retrying") {
      const { attempt, delayMs } = this.retries.next(event.error);
      this.retryDelayMs = delayMs;
      details.attempt = attempt;
      details.nextRetryMs = delayMs;
    }
    this.safeEmit("state", { ...this.describe(state), ...details });
  }

  /** Resolves once the session is in one of `states`. */
  private whenState(states: readonly SessionState[]): Promise<void> {
    return new Promise((resolve) => {
      const onState = (event: SessionStateEvent): void => {
        if (!states.includes(event.state)) return;
        this.off("state", onState);
        resolve();
      };
      this.on("state", onState);
    });
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

  /** Emits without letting a throwing listener unwind into the SDK's (or the lifecycle's) call stack. */
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

function numericVersion(version: unknown, deviceId: string): number {
  if (typeof version !== "number") {
    throw new HubError("the hub returned reported properties without $version", deviceId);
  }
  return version;
}
