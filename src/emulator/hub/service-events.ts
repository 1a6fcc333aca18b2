// Events the hub reports to the service side (HubService is the EventEmitter the endpoint emits on).
import type { EventEmitter } from "node:events";

/** A listener that throws must not break the hub's own processing. */
export function emitSafely(events: EventEmitter, event: string, payload: unknown): void {
  try {
    events.emit(event, payload);
  } catch {
    // The listener's failure is its own; the hub carries on.
  }
}
