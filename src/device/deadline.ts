// One helper for every bounded wait in the device session: an operation raced against a timer and a
// cancellation signal, and a sleep that a signal cuts short. The timer never outlives the race, and a
// listener added to a signal is always removed again.
import { OperationTimeoutError, SessionStoppedError } from "./errors.js";

/**
 * Resolves or rejects as `promise` does, unless `timeoutMs` passes first (OperationTimeoutError) or `signal`
 * aborts first (its reason when that is an Error, else SessionStoppedError).
 */
export function withDeadline<T>(
  promise: Promise<T>,
  operation: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = (): void => {
      settle();
      reject(abortReason(signal, operation));
    };
    const timer = setTimeout(() => {
      settle();
      reject(new OperationTimeoutError(operation, timeoutMs));
    }, timeoutMs);
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        settle();
        resolve(value);
      },
      (error: unknown) => {
        settle();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Waits `ms`; resolves false at once when `signal` aborts (before or during the wait), else true. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Resolves with the signal's reason once it aborts. */
export function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener("abort", () => resolve(signal.reason), { once: true });
  });
}

/** Waits for `promise` but at most `ms`; never rejects (for clean-up that must finish). */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

function abortReason(signal: AbortSignal | undefined, operation: string): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error && reason.name !== "AbortError"
    ? reason
    : new SessionStoppedError(operation);
}
