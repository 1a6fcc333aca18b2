// The emulated IoT Hub (device-facing AMQP over TLS) and its registry, service and fault-injection APIs.
export { startHub } from "./hub.js";
export { HubServiceError } from "./errors.js";
// Every type of the hub's public contract is defined in types.ts.
export type * from "./types.js";
