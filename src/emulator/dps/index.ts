// Local Azure IoT Hub Device Provisioning Service: AMQP (SASL PLAIN / TPM / X.509), HTTPS and MQTT front ends
// over one registration service, an enrollment store and the IoT hub emulator's registry.
import type { IncomingMessage, ServerResponse } from "node:http";
import { startAmqpServer } from "./amqp-server.js";
import { EnrollmentStore } from "./enrollment-store.js";
import { startHttpServer } from "./http-server.js";
import type { DpsTls, Listener } from "./listener.js";
import { serveMqttStream, startMqttServer } from "./mqtt-server.js";
import { RegistrationService, type RegistrationServiceOptions } from "./registration-service.js";

export {
  EnrollmentStore,
  EnrollmentStoreLoadError,
  isValidRegistrationId,
  type EnrollmentStoreOptions,
} from "./enrollment-store.js";
export { DpsError, DPS_ERROR } from "./errors.js";
export { deriveDeviceKey } from "./credentials.js";
export type {
  DpsHubs,
  DpsHubRegistry,
  DpsHubService,
  DpsHubDeviceRecord,
  DpsTwinSeed,
  LinkedHub,
} from "./hub-link.js";
export type { DpsTls } from "./listener.js";
export type * from "./types.js";

/** The registration service's options (ID scope, store, hubs, policy defaults) plus the front ends'. */
export interface DpsOptions extends RegistrationServiceOptions {
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  tls: DpsTls;
  /** Ports; 0 or absent picks a free one. Real DPS: AMQP 5671, HTTPS 443, MQTT 8883. */
  amqpPort?: number;
  httpsPort?: number;
  mqttPort?: number;
  /** Front ends to start. Default: all three. */
  transports?: { amqp?: boolean; https?: boolean; mqtt?: boolean };
  /** Another HTTPS API sharing the HTTPS port: gets every request outside the device API's paths. */
  otherHttpsRequests?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Receives one line per refused connection or failed request (never keys or tokens). */
  log?: (message: string) => void;
}

/** Emulator-only fault injection, for tests. */
export interface DpsFaults {
  /** The next `count` register/poll requests get DPS's throttling answer (AMQP reject, HTTP/MQTT 429). */
  throttleNext(count: number): void;
}

export interface Dps {
  readonly host: string;
  readonly idScope: string;
  readonly ports: { amqp?: number; https?: number; mqtt?: number };
  readonly store: EnrollmentStore;
  readonly faults: DpsFaults;
  close(): Promise<void>;
}

export async function startDps(options: DpsOptions): Promise<Dps> {
  const host = options.host ?? "127.0.0.1";
  const log = options.log ?? (() => undefined);
  const service = new RegistrationService({
    idScope: options.idScope,
    store: options.store,
    hubs: options.hubs,
    ...(options.defaultAllocationPolicy ? { defaultAllocationPolicy: options.defaultAllocationPolicy } : {}),
    ...(options.retryAfterSeconds !== undefined ? { retryAfterSeconds: options.retryAfterSeconds } : {}),
    ...(options.extraAssigningPolls !== undefined
      ? { extraAssigningPolls: options.extraAssigningPolls }
      : {}),
    ...(options.echoDevicePayload !== undefined ? { echoDevicePayload: options.echoDevicePayload } : {}),
  });
  const enabled = { amqp: true, https: true, mqtt: true, ...options.transports };
  const common = { host, tls: options.tls, service, log };
  const listeners: Listener[] = [];
  const ports: { amqp?: number; https?: number; mqtt?: number } = {};
  try {
    let amqp: Awaited<ReturnType<typeof startAmqpServer>> | undefined;
    if (enabled.amqp) {
      amqp = await startAmqpServer({ ...common, port: options.amqpPort ?? 0 });
      listeners.push(amqp);
      ports.amqp = amqp.port;
    }
    if (enabled.mqtt) {
      const mqtt = await startMqttServer({ ...common, port: options.mqttPort ?? 0 });
      listeners.push(mqtt);
      ports.mqtt = mqtt.port;
    }
    if (enabled.https) {
      const https = await startHttpServer({
        ...common,
        port: options.httpsPort ?? 0,
        ...(options.otherHttpsRequests ? { otherRequests: options.otherHttpsRequests } : {}),
        // The WebSocket transports always use port 443: served here when this listener has that port.
        webSockets: {
          ...(amqp ? { AMQPWSB10: amqp.acceptStream } : {}),
          ...(enabled.mqtt
            ? { mqtt: (stream, tlsSocket) => serveMqttStream(stream, tlsSocket, service, log) }
            : {}),
        },
      });
      listeners.push(https);
      ports.https = https.port;
    }
  } catch (error) {
    await Promise.all(listeners.map((l) => l.close()));
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    host,
    idScope: options.idScope,
    ports,
    store: options.store,
    faults: { throttleNext: (count) => service.throttleNext(count) },
    close: () => {
      service.close();
      return (closing ??= Promise.all(listeners.map((l) => l.close())).then(() => undefined));
    },
  };
}
