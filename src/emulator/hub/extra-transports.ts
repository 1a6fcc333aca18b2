// The hub's device transports besides AMQP over TLS: MQTT over TLS, and (on the HTTPS port) MQTT and AMQP over
// WebSocket plus the device HTTPS API. They share the AMQP endpoint's C2D queues, method calls and fault counters.
import type { EventEmitter } from "node:events";
import type { AmqpEndpoint } from "./amqp-endpoint.js";
import type { CredentialContext } from "./device-credentials.js";
import type { DeviceStore } from "./device-store.js";
import { DeviceHttpsApi } from "./device-https-api.js";
import { DeviceTransports } from "./device-transports.js";
import { startHubHttpsServer, type HubHttpsServer } from "./hub-https-server.js";
import { peerCertificateInfo } from "./link-authorization.js";
import { MqttEndpoint } from "./mqtt-endpoint.js";
import type { TelemetryLog } from "./telemetry.js";
import type { HubOptions } from "./types.js";

export interface ExtraTransports {
  readonly transports: DeviceTransports;
  readonly mqttPort?: number;
  readonly httpsPort?: number;
  close(): Promise<void>;
}

export async function startExtraTransports(
  amqp: AmqpEndpoint,
  parts: { store: DeviceStore; telemetry: TelemetryLog; events: EventEmitter },
  options: HubOptions & { host: string },
): Promise<ExtraTransports> {
  const log = options.log ?? (() => undefined);
  const ports: number[] = [];
  const credentials: CredentialContext = {
    store: parts.store,
    hostNames: options.hostNames,
    ports: () => ports,
    faults: amqp.faults,
  };
  const mqtt = new MqttEndpoint(
    {
      host: options.host,
      ...(options.mqttPort !== undefined ? { port: options.mqttPort } : {}),
      tls: options.tls,
    },
    {
      ...parts,
      credentials,
      faults: amqp.faults,
      c2d: amqp.c2d,
      methods: amqp.methods,
      log,
      connectedElsewhere: (hubHostName, deviceId) => amqp.isConnected(hubHostName, deviceId),
    },
  );
  const transports = new DeviceTransports(amqp);
  transports.add(mqtt);
  await mqtt.listen();
  ports.push(amqp.boundPort);
  if (options.mqttPort !== undefined) ports.push(mqtt.boundPort);
  const api = new DeviceHttpsApi({
    ...parts,
    credentials,
    faults: amqp.faults,
    c2d: amqp.c2d,
    peer: (socket) => peerCertificateInfo(socket, (options.tls.clientCa?.length ?? 0) > 0),
    log,
  });
  let https: HubHttpsServer | undefined;
  if (options.httpsPort !== undefined) {
    https = await startHubHttpsServer({
      host: options.host,
      port: options.httpsPort,
      tls: options.tls,
      webSockets: {
        mqtt: (stream, tlsSocket) => mqtt.serveStream(stream, tlsSocket),
        amqp: (stream, tlsSocket) => amqp.acceptStream(stream, tlsSocket),
      },
      api,
      ...(options.otherHttpsRequests ? { otherRequests: options.otherHttpsRequests } : {}),
      log,
    }).catch(async (error: unknown) => {
      await mqtt.close();
      throw error;
    });
    ports.push(https.port);
  }
  return {
    transports,
    ...(options.mqttPort !== undefined ? { mqttPort: mqtt.boundPort } : {}),
    ...(https ? { httpsPort: https.port } : {}),
    close: async () => {
      api.close();
      await https?.close();
      await mqtt.close();
    },
  };
}
