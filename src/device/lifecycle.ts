// Runs the session's state table (states.ts): one phase function per state does that state's work and
// returns the event that ends it; an event from outside (stop, reprovision) cancels the running phase. This
// is the only place the state changes. In the manner of the SDK's AMQP state machine and Node-RED's MQTT
// broker node (docs/architecture.md "Device session").
import { nextState, type SessionEventType, type SessionState } from "./states.js";

export interface SessionEvent {
  type: SessionEventType;
  /** The failure behind a retry, fatal, link-lost or identity-rejected event. */
  error?: unknown;
}

/** A state's work. Resolves with the event that ends it; `signal` aborts when another event ended it first. */
export type Phase = (signal: AbortSignal, enteredBy: SessionEvent) => Promise<SessionEvent>;

export interface LifecycleHooks {
  /** Called on every state change, before the new state's phase starts. Must not throw. */
  entered(state: SessionState, event: SessionEvent, previous: SessionState): void;
  /** A phase threw instead of returning an event: a bug, reported, and treated as a retryable failure. */
  phaseFailed(state: SessionState, error: unknown): void;
}

/** Events a `stopping` session keeps and carries out once stopped; the last one asked for wins. */
const KEPT_WHILE_STOPPING: ReadonlySet<SessionEventType> = new Set(["start", "reprovision", "close", "stop"]);

export class Lifecycle {
  private current: SessionState = "idle";
  private running: AbortController | undefined;
  /** What was asked while stopping (start, reprovision or close), applied on `stopped`. */
  private afterStop: SessionEvent | undefined;
  /**
   * Events not applied yet. A listener of `entered` may dispatch (a state listener that calls stop()); its
   * event waits here until the current one is fully applied, phase started, so no transition interleaves.
   */
  private readonly pending: SessionEvent[] = [];
  private applying = false;

  constructor(
    private readonly phases: Partial<Record<SessionState, Phase>>,
    private readonly hooks: LifecycleHooks,
  ) {}

  get state(): SessionState {
    return this.current;
  }

  /** Applies `event` per the table; ignored when the table has no entry for it in the current state. */
  dispatch(event: SessionEvent): void {
    this.pending.push(event);
    if (this.applying) return;
    this.applying = true;
    try {
      for (let next = this.pending.shift(); next; next = this.pending.shift()) this.apply(next);
    } finally {
      this.applying = false;
    }
  }

  private apply(event: SessionEvent): void {
    if (this.current === "stopping" && KEPT_WHILE_STOPPING.has(event.type)) {
      this.keepForAfterStop(event);
      return;
    }
    const next = nextState(this.current, event.type);
    if (next === undefined) return;
    // close = stop, then closed: the stopping phase runs first.
    if (event.type === "close" && next === "stopping") this.afterStop = event;
    this.running?.abort();
    this.running = undefined;
    const previous = this.current;
    this.current = next;
    this.hooks.entered(next, event, previous);
    if (event.type === "stopped" && this.afterStop) {
      // Carried out next, before anything dispatched meanwhile.
      this.pending.unshift(this.afterStop);
      this.afterStop = undefined;
      return;
    }
    this.runPhase(next, event);
  }

  private keepForAfterStop(event: SessionEvent): void {
    if (this.afterStop?.type === "close") return;
    // stop() after start() while stopping: the session stays stopped.
    this.afterStop = event.type === "stop" ? undefined : event;
  }

  private runPhase(state: SessionState, enteredBy: SessionEvent): void {
    const phase = this.phases[state];
    if (!phase) return;
    const controller = new AbortController();
    this.running = controller;
    const finish = (event: SessionEvent): void => {
      // A phase that was cancelled has been overtaken by another event; its result no longer counts.
      if (this.running !== controller || controller.signal.aborted) return;
      this.running = undefined;
      this.dispatch(event);
    };
    let result: Promise<SessionEvent>;
    try {
      result = phase(controller.signal, enteredBy);
    } catch (error) {
      result = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    result.then(finish, (error: unknown) => {
      this.hooks.phaseFailed(state, error);
      finish(failureEvent(state, error));
    });
  }
}

/** The event that ends a phase that threw: never leaves the session stuck in that state. */
function failureEvent(state: SessionState, error: unknown): SessionEvent {
  if (state === "stopping") return { type: "stopped" };
  if (state === "connected") return { type: "link-lost", error };
  return { type: "retry", error };
}
