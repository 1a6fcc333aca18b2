// What the session does after a failure, as one injectable object (in the manner of the SDK's RetryPolicy):
// classify(error) says retry, register again, or stop until reconfigured; delayMs(attempt, error) says how
// long to wait. Only a configuration a person must fix stops the retries (docs/architecture.md "Retry policy").
import { ExponentialBackoff, type BackoffPolicy } from "./backoff.js";
import {
  isConfigurationProblem,
  isIdentityRejected,
  isQuotaExceeded,
  isRetryable,
  isThrottled,
  retryAfterMs,
} from "./retryable.js";

/** retry: wait, then try again; reprovision: register with DPS again; stop: wait for a new configuration. */
export type RetryAction = "retry" | "reprovision" | "stop";

export interface RetryPolicy {
  classify(error: unknown): RetryAction;
  /** Delay before retry number `attempt` (1 for the first) after `error`. */
  delayMs(attempt: number, error: unknown): number;
}

/** A large attempt number: the backoff's longest delay, whatever its shape. */
const LONGEST = Number.MAX_SAFE_INTEGER;

export class DefaultRetryPolicy implements RetryPolicy {
  constructor(private readonly backoff: BackoffPolicy = new ExponentialBackoff()) {}

  classify(error: unknown): RetryAction {
    if (isConfigurationProblem(error)) return "stop";
    if (isIdentityRejected(error)) return "reprovision";
    return "retry";
  }

  delayMs(attempt: number, error: unknown): number {
    const asked = retryAfterMs(error) ?? 0;
    // A refusal that time alone may mend (quota used up, enrollment disabled or not made yet): try again
    // rarely, at the longest delay, rather than never.
    const ownDelay =
      isQuotaExceeded(error) || (error !== undefined && !isRetryable(error))
        ? this.backoff.delayMs(LONGEST)
        : this.backoff.delayMs(attempt, isThrottled(error));
    return Math.max(asked, ownDelay);
  }
}

/** Counts attempts against a policy; reset() after a success so the next outage starts with short delays. */
export class RetryCounter {
  private attempts = 0;

  constructor(private readonly policy: RetryPolicy) {}

  next(error: unknown): { attempt: number; delayMs: number } {
    this.attempts += 1;
    return { attempt: this.attempts, delayMs: this.policy.delayMs(this.attempts, error) };
  }

  reset(): void {
    this.attempts = 0;
  }
}
