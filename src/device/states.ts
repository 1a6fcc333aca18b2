// The device session's connection states and the one table of legal transitions between them
// (ARCHITECTURE.md "Device session"; STYLE.md "Explicit state machines").

export const SESSION_STATES = [
  "idle",
  "provisioning",
  "provisioned",
  "connecting",
  "connected",
  "disconnected",
  "retrying",
  "error",
] as const;

export type SessionState = (typeof SESSION_STATES)[number];

/**
 * Every legal transition, and why it happens. `idle` is reachable from everywhere (stop()).
 * - provisioning -> retrying: DPS failed with a retryable error; the retry provisions again.
 * - connecting -> provisioning: the hub refused the cached identity (401/404), so register again.
 * - connecting -> retrying: the hub could not be reached; the retry connects again.
 * - connected/disconnected/retrying/error -> provisioning: reprovision() asked for a new registration.
 * - error -> provisioned: start() again with a cached registration.
 */
export const TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  idle: ["provisioning", "provisioned"],
  provisioning: ["provisioned", "retrying", "error", "idle"],
  provisioned: ["connecting", "idle"],
  connecting: ["connected", "provisioning", "retrying", "error", "idle"],
  connected: ["disconnected", "provisioning", "error", "idle"],
  disconnected: ["retrying", "provisioning", "error", "idle"],
  retrying: ["connecting", "provisioning", "idle"],
  error: ["provisioning", "provisioned", "idle"],
};

export function canTransition(from: SessionState, to: SessionState): boolean {
  return TRANSITIONS[from].includes(to);
}

export class IllegalTransitionError extends Error {
  override readonly name = "IllegalTransitionError";
  constructor(
    readonly from: SessionState,
    readonly to: SessionState,
  ) {
    super(`illegal device session transition ${from} -> ${to}`);
  }
}

/** Throws IllegalTransitionError when the table has no `from -> to` entry. */
export function assertTransition(from: SessionState, to: SessionState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}
