// SAS token expiry: when a device's CBS token runs out, its authorization on that connection is revoked.
import type { AmqpError } from "rhea";
import { Condition } from "./amqp-wire.js";
import type { TimerSet } from "./timer-set.js";

/** Longest delay setTimeout accepts; later deadlines are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ExpiringAuthorization {
  expiresAtMs?: number;
  expiryTimer?: NodeJS.Timeout;
}

/** Token expiry detaches the device's links with amqp:unauthorized-access (§2.5, detach-links action). */
export function scheduleExpiry(
  authorization: ExpiringAuthorization,
  timers: TimerSet,
  revoke: (error: AmqpError) => void,
): void {
  const expiresAtMs = authorization.expiresAtMs;
  if (expiresAtMs === undefined) return;
  const arm = (): void => {
    const delay = Math.min(Math.max(0, expiresAtMs - Date.now()), MAX_TIMER_MS);
    authorization.expiryTimer = timers.set(() => {
      if (Date.now() < expiresAtMs) {
        arm();
        return;
      }
      revoke({
        condition: Condition.unauthorized,
        description: "The SAS token has expired.",
      });
    }, delay);
  };
  arm();
}

export function cancelExpiry(authorization: ExpiringAuthorization, timers: TimerSet): void {
  if (authorization.expiryTimer) timers.clear(authorization.expiryTimer);
}
