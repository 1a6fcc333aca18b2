// DPS over HTTPS (REST api-version 2019-03-31 as the device SDKs use it, docs/dps-protocol.md §4):
//   PUT /{idScope}/registrations/{registrationId}/register
//   GET /{idScope}/registrations/{registrationId}/operations/{operationId}
// Symmetric key: Authorization SAS. X.509: TLS client certificate. TPM: an unauthenticated PUT with the EK and
// SRK is answered 401 + authenticationKey (activation blob); the device then signs its SAS with the TPM.
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { DPS_ERROR, DpsError, unauthorized } from "./errors.js";
import { listen, peerChain, type DpsTls, type Listener } from "./listener.js";
import type { DeviceIdentity, RegistrationService } from "./registration-service.js";
import { acceptWebSocket } from "./websocket.js";

const MAX_BODY_BYTES = 64 * 1024;
// docs/dps-protocol.md §1: AmqpWs and MqttWs connect to wss://{host}:443/$iothub/websocket.
const WEBSOCKET_PATH = "/$iothub/websocket";
export type WebSocketProtocol = "AMQPWSB10" | "mqtt";
const ROUTE = /^\/([^/]+)\/registrations\/([^/]+)\/(?:(register)|operations\/([^/]+))$/;
const TPM_SESSION_TTL_MS = 60 * 60 * 1000;
const MAX_TPM_SESSIONS = 10_000;

interface TpmSession {
  sessionKey: Buffer;
  endorsementKey: Buffer;
  storageRootKey: Buffer;
  issuedAt: number;
}

export async function startHttpServer(options: {
  host: string;
  port: number;
  tls: DpsTls;
  service: RegistrationService;
  log: (message: string) => void;
  /** AmqpWs / MqttWs on this port (path /$iothub/websocket), by WebSocket subprotocol. */
  webSockets?: Partial<Record<WebSocketProtocol, (stream: Duplex, tlsSocket: TLSSocket) => void>>;
  /**
   * Serves the requests that are not the device API's, when another API shares this port (as Azure's
   * service API shares 443 under its own host name); without it they are answered 404.
   */
  otherRequests?: (req: IncomingMessage, res: ServerResponse) => void;
}): Promise<Listener> {
  const { service, log } = options;
  // TPM challenges by lower-case registration id: the session key signs the register PUT and the polls.
  const tpmSessions = new Map<string, TpmSession>();

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer): void => {
    const url = new URL(req.url ?? "/", "https://dps.invalid");
    const route = ROUTE.exec(url.pathname);
    if (!route || !service.isOwnScope(safeDecode(route[1])))
      throw new DpsError(404, DPS_ERROR.notFound, "not found");
    const registrationId = safeDecode(route[2]);
    const isRegister = route[3] !== undefined;
    if (isRegister ? req.method !== "PUT" : req.method !== "GET") {
      throw new DpsError(405, DPS_ERROR.methodNotAllowed, "method not allowed");
    }
    if (!url.searchParams.get("api-version"))
      throw new DpsError(400, DPS_ERROR.badRequest, "api-version is required");
    let body: unknown = {};
    if (isRegister) {
      try {
        body = JSON.parse(raw.toString("utf8")) as unknown;
      } catch {
        throw new DpsError(400, DPS_ERROR.badRequest, "the request body is not JSON");
      }
    }

    const authorization = req.headers.authorization;
    const key = registrationId.toLowerCase();
    let identity: DeviceIdentity;
    if (authorization) {
      const session = tpmSessions.get(key);
      identity = session
        ? service.authenticateTpm(registrationId, authorization, session)
        : service.authenticateSymmetricKey(registrationId, authorization);
    } else {
      const chain = peerChain(req.socket as TLSSocket);
      if (chain.length > 0) {
        identity = service.authenticateX509(registrationId, chain);
      } else {
        const tpm = isRegister
          ? (body as { tpm?: { endorsementKey?: unknown; storageRootKey?: unknown } })?.tpm
          : undefined;
        if (typeof tpm?.endorsementKey !== "string" || typeof tpm.storageRootKey !== "string") {
          throw unauthorized("no credentials");
        }
        const session = {
          endorsementKey: Buffer.from(tpm.endorsementKey, "base64"),
          storageRootKey: Buffer.from(tpm.storageRootKey, "base64"),
        };
        const challenge = service.issueTpmChallenge(
          registrationId,
          session.endorsementKey,
          session.storageRootKey,
        );
        rememberSession(tpmSessions, key, {
          ...session,
          sessionKey: challenge.sessionKey,
          issuedAt: Date.now(),
        });
        return sendJson(res, 401, {
          authenticationKey: challenge.activationBlob.toString("base64"),
          keyName: "registration",
          message: "Unauthorized: activate the authentication key and sign the registration",
        });
      }
    }

    if (service.takeThrottle()) {
      const error = new DpsError(429, DPS_ERROR.throttled, "registration throttled");
      return sendJson(res, 429, error.toBody(), { "Retry-After": String(service.retryAfterSeconds) });
    }
    const result = isRegister
      ? service.register(identity, body)
      : service.operationStatus(identity, safeDecode(route[4]));
    const assigning = result.status === "assigning";
    sendJson(
      res,
      assigning ? 202 : 200,
      result,
      assigning ? { "Retry-After": String(service.retryAfterSeconds) } : {},
    );
  };

  const server = createServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      ...(options.tls.clientCa ? { ca: options.tls.clientCa } : {}),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      if (options.otherRequests && !isDeviceApiPath(req, service)) {
        options.otherRequests(req, res);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          if (!tooLarge) {
            tooLarge = true;
            const error = new DpsError(413, DPS_ERROR.payloadTooLarge, "request body too large");
            res.once("finish", () => req.socket.destroy());
            sendJson(res, 413, error.toBody(), { Connection: "close" });
          }
          return;
        }
        chunks.push(chunk);
      });
      req.on("error", () => req.socket.destroy());
      req.on("end", () => {
        if (tooLarge) return;
        try {
          handle(req, res, Buffer.concat(chunks));
        } catch (error) {
          const dpsError =
            error instanceof DpsError ? error : new DpsError(500, DPS_ERROR.internal, "internal error");
          if (!(error instanceof DpsError)) log(`HTTPS request failed: ${(error as Error).message}`);
          else if (dpsError.status === 401) log(`HTTPS request refused: ${dpsError.message}`);
          sendJson(res, dpsError.status, dpsError.toBody(), {
            "x-ms-error-code": String(dpsError.errorCode),
          });
        }
      });
    },
  );
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const tlsSocket = socket as TLSSocket;
    tlsSocket.on("error", () => tlsSocket.destroy());
    const handlers = options.webSockets ?? {};
    const path = new URL(req.url ?? "/", "https://dps.invalid").pathname;
    const protocols = (Object.keys(handlers) as WebSocketProtocol[]).filter((p) => handlers[p]);
    if (path !== WEBSOCKET_PATH || protocols.length === 0) {
      tlsSocket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const accepted = acceptWebSocket(req, tlsSocket, head, protocols);
    if (accepted) handlers[accepted.protocol as WebSocketProtocol]!(accepted.stream, tlsSocket);
  });
  return listen(server, options.host, options.port, "HTTPS", log);
}

/** "/{own idScope}/registrations/..." : the device API's part of a shared port. */
function isDeviceApiPath(req: IncomingMessage, service: RegistrationService): boolean {
  const path = new URL(req.url ?? "/", "https://dps.invalid").pathname;
  const scope = /^\/([^/]+)\/registrations\//.exec(path)?.[1];
  return scope !== undefined && service.isOwnScope(safeDecode(scope));
}

function rememberSession(sessions: Map<string, TpmSession>, key: string, session: TpmSession): void {
  const oldest = Date.now() - TPM_SESSION_TTL_MS;
  for (const [id, s] of sessions) {
    if (s.issuedAt < oldest || sessions.size >= MAX_TPM_SESSIONS) sessions.delete(id);
    else break;
  }
  sessions.delete(key);
  sessions.set(key, session);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new DpsError(400, DPS_ERROR.badRequest, "malformed path");
  }
}

/** Every answer is JSON: the SDK crashes on a 2xx without a JSON content type (docs/dps-protocol.md §2.1). */
function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
