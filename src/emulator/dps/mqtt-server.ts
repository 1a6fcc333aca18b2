// DPS over MQTT 3.1.1 (mqtts), docs/dps-protocol.md §5: not a broker, only the $dps request/response topics.
//   CONNECT  clientId = registrationId, username "{idScope}/registrations/{registrationId}/api-version=…",
//            password = SAS token (symmetric key) or none (X.509 client certificate). No TPM over MQTT.
//   PUBLISH  $dps/registrations/PUT/iotdps-register/?$rid={rid}
//            $dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}
//   answers  $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]
import type { Duplex } from "node:stream";
import { createServer, type TLSSocket } from "node:tls";
import { generate, parser as createParser, type Packet } from "mqtt-packet";
import { DPS_ERROR, DpsError } from "./errors.js";
import { listen, peerChain, type DpsTls, type Listener } from "./listener.js";
import type { DeviceIdentity, RegistrationService } from "./registration-service.js";

const USERNAME = /^([^/]+)\/registrations\/([^/]+)\/(.*)$/;
const REQUEST_TOPIC =
  /^\$dps\/registrations\/(PUT\/iotdps-register|GET\/iotdps-get-operationstatus)\/\?(.*)$/;
const RESPONSE_FILTER = "$dps/registrations/res/#";

// CONNACK return codes, MQTT 3.1.1 §3.2.2.3
const CONNACK = {
  accepted: 0,
  badProtocol: 1,
  identifierRejected: 2,
  badUsernameOrPassword: 4,
  notAuthorized: 5,
};
const SUBACK_FAILURE = 128;
const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_CONNECTION_INPUT_BYTES = 1024 * 1024;
const CONNECT_TIMEOUT_MS = 30_000;

export async function startMqttServer(options: {
  host: string;
  port: number;
  tls: DpsTls;
  service: RegistrationService;
  log: (message: string) => void;
}): Promise<Listener> {
  const server = createServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      ...(options.tls.clientCa ? { ca: options.tls.clientCa } : {}),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (socket) => serveMqttStream(socket, socket, options.service, options.log),
  );
  return listen(server, options.host, options.port, "MQTT", options.log);
}

/** Serves one MQTT byte stream: the TLS socket itself, or a WebSocket (MqttWs) carried inside it. */
export function serveMqttStream(
  socket: Duplex,
  tlsSocket: TLSSocket,
  service: RegistrationService,
  log: (message: string) => void,
): void {
  const parser = createParser({ protocolVersion: 4 });
  let identity: DeviceIdentity | undefined;
  let connected = false;
  let nextMessageId = 1;
  let received = 0;

  const send = (packet: Packet): void => {
    if (!socket.destroyed && socket.writable) socket.write(generate(packet));
  };
  const refuse = (returnCode: number, why: string): void => {
    log(`MQTT connection refused: ${why}`);
    send({ cmd: "connack", returnCode, sessionPresent: false });
    socket.end();
  };
  const respond = (status: number, rid: string, body: unknown, retryAfter?: number): void => {
    const retry = retryAfter === undefined ? "" : `&retry-after=${retryAfter}`;
    send({
      cmd: "publish",
      topic: `$dps/registrations/res/${status}/?$rid=${encodeURIComponent(rid)}${retry}`,
      payload: Buffer.from(asciiJson(body), "ascii"),
      qos: 1,
      messageId: nextMessageId,
      retain: false,
      dup: false,
    });
    nextMessageId = (nextMessageId % 0xffff) + 1;
  };

  tlsSocket.setTimeout(CONNECT_TIMEOUT_MS, () => tlsSocket.destroy());
  socket.on("error", () => tlsSocket.destroy());
  tlsSocket.on("error", () => tlsSocket.destroy());
  socket.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_CONNECTION_INPUT_BYTES) return void tlsSocket.destroy();
    parser.parse(chunk);
  });
  parser.on("error", () => tlsSocket.destroy());
  parser.on("packet", (packet: Packet) => {
    if (socket.destroyed || tlsSocket.destroyed) return;
    if (!connected && packet.cmd !== "connect") return void tlsSocket.destroy();
    switch (packet.cmd) {
      case "connect": {
        if (connected) return void tlsSocket.destroy(); // a second CONNECT is a protocol violation (§3.1)
        connected = true;
        if (packet.protocolVersion !== 4) return refuse(CONNACK.badProtocol, "only MQTT 3.1.1 is supported");
        const user = USERNAME.exec(packet.username ?? "");
        if (!user || !service.isOwnScope(user[1])) {
          return refuse(CONNACK.badUsernameOrPassword, "the username is not a registration of this scope");
        }
        const registrationId = user[2];
        if (packet.clientId !== registrationId)
          return refuse(CONNACK.identifierRejected, "clientId is not the registration id");
        try {
          identity = packet.password
            ? service.authenticateSymmetricKey(registrationId, packet.password.toString("utf8"))
            : service.authenticateX509(registrationId, peerChain(tlsSocket));
        } catch (error) {
          return refuse(CONNACK.notAuthorized, error instanceof DpsError ? error.message : "not authorized");
        }
        const keepAlive = packet.keepalive ?? 0;
        tlsSocket.setTimeout(keepAlive > 0 ? keepAlive * 1500 : 0);
        send({ cmd: "connack", returnCode: CONNACK.accepted, sessionPresent: false });
        return;
      }
      case "subscribe":
        send({
          cmd: "suback",
          messageId: packet.messageId,
          granted: packet.subscriptions.map((s) =>
            s.topic === RESPONSE_FILTER ? Math.min(s.qos, 1) : SUBACK_FAILURE,
          ),
        });
        return;
      case "unsubscribe":
        send({ cmd: "unsuback", messageId: packet.messageId, granted: [] });
        return;
      case "pingreq":
        send({ cmd: "pingresp" });
        return;
      case "puback":
        return;
      case "disconnect":
        socket.end();
        return;
      case "publish": {
        if (packet.qos === 2) return void tlsSocket.destroy(); // DPS does not support QoS 2
        if (packet.qos === 1) send({ cmd: "puback", messageId: packet.messageId });
        const topic = REQUEST_TOPIC.exec(packet.topic);
        const query = new URLSearchParams(topic?.[2] ?? "");
        const rid = query.get("$rid");
        if (!topic || !rid || !identity) return; // not a DPS request: nothing to answer
        handleRequest(
          service,
          identity,
          topic[1].startsWith("PUT"),
          packet.payload,
          query,
          rid,
          respond,
          log,
        );
        return;
      }
      default:
        tlsSocket.destroy();
    }
  });
}

function handleRequest(
  service: RegistrationService,
  identity: DeviceIdentity,
  isRegister: boolean,
  payload: Buffer | string,
  query: URLSearchParams,
  rid: string,
  respond: (status: number, rid: string, body: unknown, retryAfter?: number) => void,
  log: (message: string) => void,
): void {
  try {
    if (payload.length > MAX_PAYLOAD_BYTES)
      throw new DpsError(413, DPS_ERROR.payloadTooLarge, "request too large");
    if (service.takeThrottle()) {
      const error = new DpsError(429, DPS_ERROR.throttled, "registration throttled");
      return respond(429, rid, error.toBody(), service.retryAfterSeconds);
    }
    let result;
    if (isRegister) {
      let body: unknown;
      try {
        body = JSON.parse(payload.toString()) as unknown;
      } catch {
        throw new DpsError(400, DPS_ERROR.badRequest, "the request body is not JSON");
      }
      result = service.register(identity, body);
    } else {
      result = service.operationStatus(identity, query.get("operationId") ?? undefined);
    }
    const assigning = result.status === "assigning";
    respond(assigning ? 202 : 200, rid, result, assigning ? service.retryAfterSeconds : undefined);
  } catch (error) {
    const dpsError =
      error instanceof DpsError ? error : new DpsError(500, DPS_ERROR.internal, "internal error");
    if (!(error instanceof DpsError)) log(`MQTT request failed: ${(error as Error).message}`);
    respond(dpsError.status, rid, dpsError.toBody());
  }
}

/** The device decodes MQTT payloads as ASCII (docs/dps-protocol.md §5.2): escape everything else as \uXXXX. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
