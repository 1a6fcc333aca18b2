// The SDK dispatches direct methods by name only: each transport emits `method_<name>` on an EventEmitter
// (the AMQP transport on its method client, `_deviceMethodClient`; the MQTT transports on themselves), and
// `Client.onDeviceMethod(name, …)` is a listener for one such event. A call whose name has no listener is
// dropped silently, and the service waits for its timeout. To see every call — "all methods", and an
// immediate 404 for a name nobody handles — we wrap `emit` on that one emitter instance: an event
// `method_<name>` without a listener goes to us; every other event is emitted as before. The wrapper is an
// own property of the instance, removed again when the connection closes (docs/methods-and-c2d.md §2).
import { EventEmitter } from "node:events";

export const METHOD_EVENT_PREFIX = "method_";

/** A method request as every SDK transport emits it (AMQP: amqp_device_method_client; MQTT: mqtt.js). */
export interface TransportMethodRequest {
  methods?: { methodName?: unknown };
  requestId?: unknown;
  body?: unknown;
}

/** The emitter a transport's onDeviceMethod listens on; undefined for a transport without methods. */
export function methodEmitterOf(transport: unknown): EventEmitter | undefined {
  const methodClient = (transport as { _deviceMethodClient?: unknown } | undefined)?._deviceMethodClient;
  if (methodClient instanceof EventEmitter) return methodClient;
  return transport instanceof EventEmitter ? transport : undefined;
}

/**
 * Sends `method_<name>` events that have no listener to `unhandled`. Returns the function that restores the
 * emitter's own `emit`.
 */
export function interceptUnhandledMethods(
  emitter: EventEmitter,
  unhandled: (request: TransportMethodRequest) => void,
): () => void {
  const hadOwnEmit = Object.prototype.hasOwnProperty.call(emitter, "emit");
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the emitter as `this` below
  const previous = emitter.emit;
  const intercepting = function (this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    if (
      typeof event === "string" &&
      event.startsWith(METHOD_EVENT_PREFIX) &&
      this.listenerCount(event) === 0
    ) {
      unhandled(args[0] ?? {});
      return true;
    }
    return previous.call(this, event, ...args);
  };
  emitter.emit = intercepting;
  return () => {
    if (emitter.emit !== intercepting) return;
    if (hadOwnEmit) emitter.emit = previous;
    else delete (emitter as { emit?: unknown }).emit;
  };
}
