// The device session's lifecycle as one table: (state, event) -> next state. The lifecycle runner
// (lifecycle.ts) is the only place that reads it; nothing else changes the session's state
// (docs/architecture.md "Device session").

export const SESSION_STATES = [
  "idle",
  "provisioning",
  "provisioned",
  "connecting",
  "connected",
  "disconnected",
  "retrying",
  "error",
  "stopping",
  "closed",
] as const;

export type SessionState = (typeof SESSION_STATES)[number];

export const SESSION_EVENTS = [
  /** start(): begin, or begin again after stop() or an error. */
  "start",
  /** stop(): release everything; a start that arrives meanwhile is kept. */
  "stop",
  /** close(): stop for good. */
  "close",
  /** reprovision(): forget the cached registration and register with DPS again. */
  "reprovision",
  /** The provisioning phase has a registration (from the cache or from DPS). */
  "provisioned",
  /** Open the hub connection with that registration. */
  "connect",
  /** The hub connection is up and the twin is in sync. */
  "connected",
  /** The connection ended (drop, detached link, lost ack, refused token). */
  "link-lost",
  /** The hub refused the cached identity: register with DPS again at once. */
  "identity-rejected",
  /** A failure worth trying again after a delay. */
  "retry",
  /** The delay is over: reconnect with the registration we have. */
  "retry-connect",
  /** The delay is over: register with DPS again (no usable registration). */
  "retry-provision",
  /** A failure only a change of configuration can mend. */
  "fatal",
  /** The stopping phase released everything. */
  "stopped",
] as const;

export type SessionEventType = (typeof SESSION_EVENTS)[number];

/**
 * What each event does in each state. A missing entry means the event is ignored in that state (a start
 * while running, a reprovision while already registering); that is deliberate, not an error, because
 * callers (flow nodes, scripts) may ask twice. `stopping` keeps start/reprovision for later: see
 * lifecycle.ts.
 */
export const TRANSITIONS: Readonly<
  Record<SessionState, Readonly<Partial<Record<SessionEventType, SessionState>>>>
> = {
  idle: { start: "provisioning", reprovision: "provisioning", close: "closed" },
  provisioning: {
    provisioned: "provisioned",
    retry: "retrying",
    fatal: "error",
    stop: "stopping",
    close: "stopping",
  },
  provisioned: {
    connect: "connecting",
    retry: "retrying",
    reprovision: "provisioning",
    stop: "stopping",
    close: "stopping",
  },
  connecting: {
    connected: "connected",
    "identity-rejected": "provisioning",
    retry: "retrying",
    fatal: "error",
    reprovision: "provisioning",
    stop: "stopping",
    close: "stopping",
  },
  connected: {
    "link-lost": "disconnected",
    "identity-rejected": "provisioning",
    reprovision: "provisioning",
    stop: "stopping",
    close: "stopping",
  },
  disconnected: {
    retry: "retrying",
    reprovision: "provisioning",
    stop: "stopping",
    close: "stopping",
  },
  retrying: {
    "retry-connect": "connecting",
    retry: "retrying",
    "retry-provision": "provisioning",
    reprovision: "provisioning",
    stop: "stopping",
    close: "stopping",
  },
  error: { start: "provisioning", reprovision: "provisioning", stop: "stopping", close: "stopping" },
  stopping: { stopped: "idle" },
  closed: {},
};

/** The state `event` leads to from `state`, or undefined when the event is ignored there. */
export function nextState(state: SessionState, event: SessionEventType): SessionState | undefined {
  return TRANSITIONS[state][event];
}
