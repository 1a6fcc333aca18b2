// DPS over AMQP 1.0 (amqps): SASL PLAIN / TPM / none (X.509), the register and operation-status requests on
// the "[amqps://{host}/]{idScope}/registrations/{registrationId}" links, answers as data-section JSON with the request's
// correlation id (docs/dps-protocol.md §3).
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import {
  create_container,
  message as amqpMessage,
  type Connection,
  type ConnectionOptions,
  type EventContext,
  type Message,
  type Receiver,
  type Sender,
} from "rhea";
import {
  AnonymousMechanism,
  parseRegistrationLinkAddress,
  PlainMechanism,
  TpmMechanism,
  type DpsSaslMechanism,
} from "./amqp-sasl.js";
import { AmqpFrameGuard } from "./amqp-frame-guard.js";
import { DpsError } from "./errors.js";
import type { DeviceIdentity, RegistrationService } from "./registration-service.js";
import type { DpsTls, Listener } from "./listener.js";
import { listen, peerChain } from "./listener.js";
import { settleClientCertificateCheck } from "../tls-client-certificate.js";

// docs/dps-protocol.md §3.4
const OPERATION_TYPE = "iotdps-operation-type";
const OPERATION_ID = "iotdps-operation-id";
const REGISTER = "iotdps-register";
const GET_OPERATION_STATUS = "iotdps-get-operationstatus";
const THROTTLED = "com.microsoft:device-container-throttled";

const MAX_BODY_BYTES = 64 * 1024;
const MAX_FRAME_BYTES = 256 * 1024;
// A DPS conversation is a few kilobytes; anything far beyond is not a device.
const MAX_CONNECTION_INPUT_BYTES = 1024 * 1024;
const IDLE_TIMEOUT_MS = 120_000;

interface ConnectionState {
  identity?: DeviceIdentity;
  /** Why this connection may not register (answered to every request). */
  refusal?: DpsError;
  /** Server senders (the devices' receiver links) by lower-case registration id. */
  replyLinks: Map<string, Sender>;
}

export async function startAmqpServer(options: {
  host: string;
  port: number;
  tls: DpsTls;
  service: RegistrationService;
  log: (message: string) => void;
}): Promise<Listener & { acceptStream: (stream: Duplex, tlsSocket: TLSSocket) => void }> {
  const { service, log } = options;
  const container = create_container({ id: "provisio-dps-emulator" });
  const states = new WeakMap<Connection, ConnectionState>();
  /** The TLS socket under each connection (for X.509 client certificates, also under a WebSocket). */
  const tlsSockets = new WeakMap<Connection, TLSSocket>();

  // rhea calls the factories with no connection; the mechanism is found again through sasl_transport.
  const sasl = container.sasl_server_mechanisms as Record<string, () => DpsSaslMechanism>;
  sasl.PLAIN = () => new PlainMechanism(service, log);
  sasl.TPM = () => new TpmMechanism(service, log);
  sasl.ANONYMOUS = () => new AnonymousMechanism();

  const stateOf = (connection: Connection): ConnectionState => {
    let state = states.get(connection);
    if (!state) {
      const mechanism = mechanismOf(connection);
      state = { replyLinks: new Map(), ...(mechanism?.identity ? { identity: mechanism.identity } : {}) };
      states.set(connection, state);
    }
    return state;
  };

  /** Which registration a link is for, and whether this connection may use it. */
  const authorizeLink = (
    context: EventContext,
    address: string | undefined,
  ): { registrationId: string } | DpsError => {
    const parsed = parseRegistrationLinkAddress(service, address);
    if (!parsed) return new DpsError(404, 404001, "unknown link address");
    const state = stateOf(context.connection);
    if (!state.identity) {
      // No SASL identity: an X.509 device, authenticated by its TLS client certificate.
      try {
        const socket = tlsSockets.get(context.connection);
        state.identity = service.authenticateX509(parsed.registrationId, socket ? peerChain(socket) : []);
      } catch (error) {
        return error instanceof DpsError ? error : new DpsError(401, 401002, "not authorized");
      }
    }
    if (state.identity.registrationId.toLowerCase() !== parsed.registrationId.toLowerCase()) {
      return new DpsError(401, 401002, "the link address is not the authenticated registration");
    }
    return parsed;
  };

  // A refused link or connection is not reported by the Node SDK (it waits until its own time-out), a
  // rejected request is. So links attach, and a connection that failed authorization has its requests
  // rejected with the reason (amqp:unauthorized-access and friends).
  const onLinkOpen = (context: EventContext, link: Sender | Receiver, address: string | undefined): void => {
    const state = stateOf(context.connection);
    const result = authorizeLink(context, address);
    if (result instanceof DpsError) {
      log(`AMQP link refused: ${result.message}`);
      state.refusal ??= result;
      return;
    }
    if (link.is_sender()) state.replyLinks.set(result.registrationId.toLowerCase(), link as Sender);
  };
  container.on("sender_open", (context: EventContext) =>
    onLinkOpen(context, context.sender!, context.sender!.source?.address),
  );
  container.on("receiver_open", (context: EventContext) =>
    onLinkOpen(context, context.receiver!, context.receiver!.target?.address),
  );

  container.on("message", (context: EventContext) => {
    const delivery = context.delivery!;
    const reject = (condition: string, description: string, info?: Record<string, string>) =>
      delivery.reject({ condition, description, ...(info ? { info } : {}) });
    const state = stateOf(context.connection);
    if (state.refusal) return reject(linkCondition(state.refusal), state.refusal.message);
    const identity = state.identity;
    const reply = identity && state.replyLinks.get(identity.registrationId.toLowerCase());
    if (!identity) return reject("amqp:unauthorized-access", "not authorized");
    if (!reply) return reject("amqp:precondition-failed", "attach the receiving link first");
    const request = context.message!;
    const operationType = request.application_properties?.[OPERATION_TYPE] as unknown;
    if (service.takeThrottle()) {
      return reject(THROTTLED, "registration throttled", {
        "retry-after": String(service.retryAfterSeconds),
      });
    }
    try {
      let result;
      if (operationType === REGISTER) {
        const text = bodyText(request);
        if (text.length > MAX_BODY_BYTES)
          return reject("amqp:link:message-size-exceeded", "request too large");
        let body: unknown;
        try {
          body = JSON.parse(text) as unknown;
        } catch {
          return reject("com.microsoft:argument-error", "the request body is not JSON");
        }
        result = service.register(identity, body);
      } else if (operationType === GET_OPERATION_STATUS) {
        const operationId = request.application_properties?.[OPERATION_ID] as unknown;
        result = service.operationStatus(identity, typeof operationId === "string" ? operationId : undefined);
      } else {
        return reject("amqp:not-implemented", "unknown iotdps-operation-type");
      }
      delivery.accept();
      const applicationProperties: Record<string, string> = { [OPERATION_TYPE]: String(operationType) };
      if (result.status === "assigning")
        applicationProperties["retry-after"] = String(service.retryAfterSeconds);
      reply.send({
        // The client matches answers by correlation_id, same AMQP type (a string), and parses a data section.
        correlation_id: request.correlation_id,
        application_properties: applicationProperties,
        body: amqpMessage.data_section(Buffer.from(JSON.stringify(result), "utf8")) as unknown,
      });
    } catch (error) {
      if (error instanceof DpsError) return reject(linkCondition(error), error.message);
      log(`AMQP request failed: ${(error as Error).message}`);
      return reject("amqp:internal-error", "internal error");
    }
  });

  // rhea re-emits socket and protocol errors on the container; unhandled they would throw.
  container.on("error", (error: Error) => log(`AMQP error: ${error.message}`));
  container.on("protocol_error", (error: Error) => log(`AMQP protocol error: ${error.message}`));
  container.on("connection_error", () => undefined);
  container.on("disconnected", () => undefined);

  /** Serves one AMQP byte stream: the TLS socket itself, or a WebSocket (AmqpWs) carried inside it. */
  const acceptStream = (stream: Duplex, tlsSocket: TLSSocket): void => {
    const connection = container.create_connection({
      transport: "tls",
      autoaccept: false, // every request is settled explicitly (accepted or rejected with a condition)
    } as ConnectionOptions) as Connection & { accept(socket: Duplex): void };
    tlsSockets.set(connection, tlsSocket);
    connection.accept(stream);
    let received = 0;
    const guard = new AmqpFrameGuard(MAX_FRAME_BYTES);
    tlsSocket.setTimeout(IDLE_TIMEOUT_MS, () => tlsSocket.destroy());
    stream.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > MAX_CONNECTION_INPUT_BYTES || !guard.feed(chunk)) return void tlsSocket.destroy();
      // DPS hangs up after a failed SASL outcome; rhea would leave that to the client.
      setImmediate(() => {
        if (saslRefused(connection)) stream.end();
      });
    });
  };

  const server = createTlsServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      ...(options.tls.clientCa ? { ca: options.tls.clientCa } : {}),
      requestCert: true, // X.509 devices present a certificate; SAS and TPM devices have none
      rejectUnauthorized: false, // chains are checked against the enrollments, not the TLS trust store
    },
    (socket) => {
      settleClientCertificateCheck(socket);
      acceptStream(socket, socket);
    },
  );
  const listener = await listen(server, options.host, options.port, "AMQP", log);
  return { ...listener, acceptStream };
}

/** True once the SASL exchange ended with a refusal (sasl-outcome code other than ok, AMQP 1.0 §5.3.3.6). */
function saslRefused(connection: Connection): boolean {
  const transport = (
    connection as unknown as { sasl_transport?: { selected?: { outcome?: unknown }; outcome?: unknown } }
  ).sasl_transport;
  const outcome = transport?.selected?.outcome ?? transport?.outcome;
  return typeof outcome === "number" && outcome !== 0;
}

function mechanismOf(connection: Connection): DpsSaslMechanism | undefined {
  // rhea internals: a Selective server transport (ANONYMOUS offered) keeps the chosen SASL server in
  // `selected`; that server holds the mechanism. Not part of rhea's typings.
  const transport = (
    connection as unknown as { sasl_transport?: { selected?: { mechanism?: unknown }; mechanism?: unknown } }
  ).sasl_transport;
  const mechanism = transport?.selected?.mechanism ?? transport?.mechanism;
  return mechanism instanceof Object && "outcome" in mechanism ? (mechanism as DpsSaslMechanism) : undefined;
}

function bodyText(request: Message): string {
  const body = request.body as unknown;
  if (typeof body === "string") return body;
  if (Buffer.isBuffer(body)) return body.toString("utf8");
  const content = (body as { content?: unknown } | undefined)?.content;
  if (Buffer.isBuffer(content)) return content.toString("utf8");
  return "";
}

function linkCondition(error: DpsError): string {
  switch (error.status) {
    case 400:
      return "com.microsoft:argument-error";
    case 401:
    case 403:
      return "amqp:unauthorized-access";
    case 404:
      return "amqp:not-found";
    default:
      return "amqp:internal-error";
  }
}
