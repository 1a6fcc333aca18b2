// Bounded waits on a DeviceSession's events, shared by the session tests over the hub transports and proxies.
import type { DeviceSession, SessionState, SessionStateEvent } from "../../src/device/index.js";

export const SESSION_WAIT_MS = 30_000;

/** The first `event` value that `match` accepts; rejects naming `what` after SESSION_WAIT_MS. */
export function waitForSession<T>(
  session: DeviceSession,
  event: "state" | "twin" | "desired",
  match: (value: T) => boolean,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onEvent = (value: T): void => {
      if (!match(value)) return;
      clearTimeout(timer);
      session.off(event, onEvent as never);
      resolve(value);
    };
    const timer = setTimeout(() => {
      session.off(event, onEvent as never);
      reject(new Error(`timed out waiting for ${what}`));
    }, SESSION_WAIT_MS);
    session.on(event, onEvent as never);
  });
}

/** Resolves with the state event once the session is (or enters) `state`. */
export function waitForState(session: DeviceSession, state: SessionState): Promise<SessionStateEvent> {
  if (session.state === state) return Promise.resolve(session.status);
  return waitForSession<SessionStateEvent>(
    session,
    "state",
    (event) => event.state === state,
    `state ${state} (now ${session.state}${session.status.error ? `: ${session.status.error}` : ""})`,
  );
}
