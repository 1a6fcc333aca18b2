// The HTTPS listener of the service REST API: authenticates every call with SAS, routes it, bounds and
// parses its body and answers in the Azure error shapes. Nothing a client sends can crash the process:
// every handler error becomes a JSON error response.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { authenticateServiceCall, type SharedAccessPolicy } from "./auth.js";
import { asServiceApiError, errors, type ErrorFlavour } from "./errors.js";
import { DEFAULT_MAX_BODY_BYTES, parseJsonObject, readBody, sendError, sendJson } from "./http-io.js";
import { matchRoute, type Route, type RouteContext } from "./router.js";

export interface ServiceApiServerOptions {
  host?: string;
  port?: number;
  tls: { key: string; cert: string };
  routes: readonly Route[];
  policies: { dps: SharedAccessPolicy; hub: SharedAccessPolicy };
  maxBodyBytes?: number;
  /** Called with unexpected handler errors (never with secrets); defaults to silence. */
  onInternalError?: (error: unknown) => void;
}

export interface ServiceApiServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

function flavourOf(realm: Route["realm"] | undefined): ErrorFlavour {
  return realm === "dps" ? "dps" : "hub";
}

async function handleRequest(
  options: ServiceApiServerOptions,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const url = new URL(request.url ?? "/", "https://emulator.invalid");
  const matched = matchRoute(options.routes, request.method ?? "GET", url.pathname);
  if (matched === undefined) {
    request.resume();
    sendError(response, errors.notFound(`no such resource: ${url.pathname}`), "hub");
    return;
  }
  if (matched === "method") {
    request.resume();
    sendError(response, errors.methodNotAllowed(request.method ?? ""), "hub");
    return;
  }
  if (matched === "bad-encoding") {
    request.resume();
    sendError(response, errors.badRequest("the request path is not valid percent-encoding"), "hub");
    return;
  }
  const { route, params } = matched;
  const flavour = flavourOf(route.realm);
  const candidates =
    route.realm === "emulator"
      ? ([
          ["hub", options.policies.hub],
          ["dps", options.policies.dps],
        ] as const)
      : ([[route.realm, options.policies[route.realm]]] as const);
  let caller: RouteContext["caller"] | undefined;
  let callerRealm: RouteContext["callerRealm"] = "hub";
  let refusal = errors.unauthorized();
  for (const [realm, policy] of candidates) {
    const outcome = authenticateServiceCall(request.headers.authorization, [policy]);
    if ("hostName" in outcome) {
      caller = outcome;
      callerRealm = realm;
      break;
    }
    refusal = outcome;
  }
  if (!caller) {
    request.resume();
    sendError(response, refusal, flavour);
    return;
  }
  let bodyPromise: Promise<Buffer> | undefined;
  const body = () => (bodyPromise ??= readBody(request, maxBodyBytes));
  const context: RouteContext = {
    request,
    response,
    params,
    query: url.searchParams,
    caller,
    callerRealm,
    body,
    json: async () => parseJsonObject(await body()),
  };
  try {
    const result = await route.handle(context);
    if (result === "streaming") return;
    if (!bodyPromise) request.resume();
    sendJson(response, result.status, result.body, result.headers);
  } catch (error) {
    request.resume();
    const known = asServiceApiError(error);
    if (!known) options.onInternalError?.(error);
    sendError(response, known ?? errors.internal(), flavour);
  }
}

/** The service REST API as a request listener, for a listener of its own or one it shares. */
export function serviceApiRequestListener(
  options: ServiceApiServerOptions,
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    request.on("error", () => undefined); // aborted uploads: the response path handles the rest
    response.on("error", () => undefined);
    handleRequest(options, request, response).catch((error: unknown) => {
      options.onInternalError?.(error);
      if (!response.headersSent) sendError(response, errors.internal(), "hub");
      else response.destroy();
    });
  };
}

/** Starts the service REST API over HTTPS. */
export function startServiceApiServer(options: ServiceApiServerOptions): Promise<ServiceApiServer> {
  const host = options.host ?? "127.0.0.1";
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    { key: options.tls.key, cert: options.tls.cert },
    serviceApiRequestListener(options),
  );
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("secureConnection", (socket) => socket.on("error", () => undefined));
  server.on("tlsClientError", () => undefined); // a client that does not trust our CA: its problem, not ours
  server.on("clientError", (_error, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    const onListenError = (error: Error) => reject(error);
    server.once("error", onListenError);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", onListenError);
      server.on("error", (error) => options.onInternalError?.(error));
      const port = (server.address() as AddressInfo).port;
      resolve({
        host,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}
