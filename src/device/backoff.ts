// Retry delays as a value (in the manner of the SDK's ExponentialBackOffWithJitter, retry_policy.ts), injected
// into the session so tests can pass a fast one. One policy serves DPS and the hub.

export interface BackoffPolicy {
  /** Delay before retry number `attempt` (1 for the first retry). `throttled` asks for a longer wait. */
  delayMs(attempt: number, throttled?: boolean): number;
}

export interface ExponentialBackoffOptions {
  /** First delay. Default 1 s. */
  initialDelayMs?: number;
  /** Upper bound of any delay, jitter included. Default 60 s. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is randomised: delay * (1 - jitter .. 1). Default 0.2. */
  jitter?: number;
  /** Lower bound when the service throttles (429 / ThrottlingError). Default 10 s, as the SDK. */
  throttledMinDelayMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

/**
 * Capped exponential backoff with jitter: base = initial * factor^(attempt-1), capped at max, then a random
 * reduction of up to `jitter` of it so that many gateways restarting together do not retry in step.
 */
export class ExponentialBackoff implements BackoffPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly factor: number;
  readonly jitter: number;
  readonly throttledMinDelayMs: number;
  private readonly random: () => number;

  constructor(options: ExponentialBackoffOptions = {}) {
    this.initialDelayMs = options.initialDelayMs ?? 1_000;
    this.maxDelayMs = options.maxDelayMs ?? 60_000;
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0.2;
    this.throttledMinDelayMs = Math.min(options.throttledMinDelayMs ?? 10_000, this.maxDelayMs);
    this.random = options.random ?? Math.random;
    if (!(this.initialDelayMs >= 0) || !(this.maxDelayMs >= this.initialDelayMs)) {
      throw new RangeError("backoff needs 0 <= initialDelayMs <= maxDelayMs");
    }
    if (!(this.factor >= 1)) throw new RangeError("backoff factor must be >= 1");
    if (!(this.jitter >= 0 && this.jitter <= 1)) throw new RangeError("backoff jitter must be within [0, 1]");
  }

  delayMs(attempt: number, throttled = false): number {
    const n = Math.max(1, Math.floor(attempt));
    // Math.min before the power would overflow: factor^(n-1) is Infinity for large n, which min() caps.
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * Math.pow(this.factor, n - 1));
    const jittered = base * (1 - this.jitter * this.random());
    const floor = throttled ? this.throttledMinDelayMs : 0;
    return Math.round(Math.min(this.maxDelayMs, Math.max(floor, jittered)));
  }
}
