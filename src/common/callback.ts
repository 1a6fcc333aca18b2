/** Node-style callback as the Azure SDK contracts use them. */
export type Callback<T> = (error: Error | null, result?: T) => void;

/**
 * Settles `callback` from `promise` outside the promise chain, so that a callback that throws is the caller's
 * exception and never an unhandled rejection of ours.
 */
export function settle<T>(promise: Promise<T>, callback: Callback<T>): void {
  promise.then(
    (result) => process.nextTick(callback, null, result),
    (error: unknown) => process.nextTick(callback, error instanceof Error ? error : new Error(String(error))),
  );
}
