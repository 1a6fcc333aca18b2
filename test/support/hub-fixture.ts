// Shared by the hub-*.test.ts files: bounded waits for the emulated IoT Hub's events and the device SDK's
// promises, and a SAS device registered on the hub.
import type { EventEmitter } from "node:events";
import type { Hub } from "../../src/emulator/hub/index.js";

/** The host name the hub tests give the emulated hub (its TLS certificate is for localhost). */
export const HUB = "localhost";

export interface HubWaits {
  /** Resolves with the first event matching `accept`, or rejects after `timeoutMs`. */
  waitForEvent: <T>(
    emitter: EventEmitter,
    event: string,
    accept: (value: T) => boolean,
    timeoutMs?: number,
  ) => Promise<T>;
  /** Settles like `promise`, or rejects with "timed out: {what}" after `timeoutMs`. */
  withTimeout: <T>(promise: Promise<T>, what: string, timeoutMs?: number) => Promise<T>;
}

/** waitForEvent and withTimeout that give up after `defaultTimeoutMs` unless told otherwise. */
export function hubWaits(defaultTimeoutMs: number): HubWaits {
  return {
    waitForEvent: <T>(
      emitter: EventEmitter,
      event: string,
      accept: (value: T) => boolean,
      timeoutMs = defaultTimeoutMs,
    ): Promise<T> =>
      new Promise((resolve, reject) => {
        const onEvent = (value: T): void => {
          if (!accept(value)) return;
          clearTimeout(timer);
          emitter.off(event, onEvent);
          resolve(value);
        };
        const timer = setTimeout(() => {
          emitter.off(event, onEvent);
          reject(new Error(`timed out waiting for ${event}`));
        }, timeoutMs);
        emitter.on(event, onEvent);
      }),
    withTimeout: <T>(promise: Promise<T>, what: string, timeoutMs = defaultTimeoutMs): Promise<T> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), timeoutMs);
      });
      return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
    },
  };
}

/** Registers (or replaces) a device on HUB that authenticates with the SAS key `primaryKey`. */
export function registerSasDevice(
  hub: Hub,
  deviceId: string,
  primaryKey: string,
  status: "enabled" | "disabled" = "enabled",
): void {
  hub.registry.upsertDevice({
    hubHostName: HUB,
    deviceId,
    status,
    authentication: { type: "sas", symmetricKey: { primaryKey } },
  });
}
