// The emulator's web page and its JSON API over plain HTTP, on loopback only unless the caller explicitly
// allows more. Every /ui/api/ call needs the access token of this start; the page and its static assets load
// without it (the page then asks the person to open the printed link). Responses carry a self-only CSP and
// are never cached; device-provided text only ever travels as JSON data.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { asServiceApiError, errors, ServiceApiError } from "../service-api/errors.js";
import { streamHubEvents } from "../service-api/event-stream.js";
import { parseJsonObject, readBody } from "../service-api/http-io.js";
import { C2dTracker } from "./c2d-tracker.js";
import { handleCommand } from "./command-routes.js";
import { accessTokenMatches, newAccessToken, presentedAccessToken } from "./access-token.js";
import { hostHeaderName, isLoopbackHost, urlHost } from "./loopback.js";
import { PAGE_HTML } from "./page-html.js";
import { PAGE_SCRIPT } from "./page-script.js";
import { PAGE_STYLE } from "./page-style.js";
import {
  deviceDetailView,
  enrollmentsView,
  listDeviceViews,
  recentTelemetryViews,
  type WebUiBackend,
} from "./views.js";

export interface WebUiOptions {
  backend: WebUiBackend;
  /** Default 127.0.0.1. Anything but a loopback address is refused unless `allowNonLoopback` is set. */
  host?: string;
  /** 0 or absent = any free port. */
  port?: number;
  /** Serve on a non-loopback address (plain HTTP, token only): the caller has to ask for it. */
  allowNonLoopback?: boolean;
  /** Unexpected handler errors (never secrets); default silence. */
  onInternalError?: (error: unknown) => void;
}

export interface WebUi {
  readonly host: string;
  readonly port: number;
  /** The page's URL with this start's access token: http://127.0.0.1:PORT/?token=... */
  readonly url: string;
  close(): Promise<void>;
}

export class WebUiHostError extends Error {
  override readonly name = "WebUiHostError";
}

/** A desired-properties patch is at most a twin section (32 KB); leave room for JSON whitespace. */
const MAX_PATCH_BYTES = 64 * 1024;
const TELEMETRY_DEFAULT = 50;
const TELEMETRY_MAX = 1000;

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": CONTENT_SECURITY_POLICY,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  // The token is in the page's first URL: never let it travel on in a Referer.
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cache-Control": "no-store",
};

const STATIC: Readonly<Record<string, { type: string; body: string }>> = {
  "/": { type: "text/html; charset=utf-8", body: PAGE_HTML },
  "/index.html": { type: "text/html; charset=utf-8", body: PAGE_HTML },
  "/ui/app.js": { type: "text/javascript; charset=utf-8", body: PAGE_SCRIPT },
  "/ui/app.css": { type: "text/css; charset=utf-8", body: PAGE_STYLE },
};

function send(response: ServerResponse, status: number, type: string, body: string): void {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(status, { "Content-Type": type, "Content-Length": String(Buffer.byteLength(body)) });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  send(response, status, "application/json; charset=utf-8", JSON.stringify(body));
}

function sendApiError(response: ServerResponse, error: ServiceApiError): void {
  sendJson(response, error.status, {
    error: { status: error.status, code: error.errorCode, message: error.message },
  });
}

function limitParam(query: URLSearchParams): number {
  const raw = query.get("limit");
  if (raw === null) return TELEMETRY_DEFAULT;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > TELEMETRY_MAX) {
    throw errors.badRequest(`limit must be an integer from 1 to ${TELEMETRY_MAX}`);
  }
  return limit;
}

function deviceNotFound(deviceId: string): ServiceApiError {
  return new ServiceApiError(404, "DeviceNotFound", `Device ${deviceId} not found.`);
}

/** "/ui/api/devices/{id}[/rest]" -> [id, rest]; undefined when the path is not a device path. */
function devicePath(pathname: string): [string, string] | undefined {
  const match = /^\/ui\/api\/devices\/([^/]+)(\/.*)?$/.exec(pathname);
  if (!match?.[1]) return undefined;
  try {
    return [decodeURIComponent(match[1]), match[2] ?? ""];
  } catch {
    throw errors.badRequest("the device id is not valid percent-encoding");
  }
}

async function handleApi(
  backend: WebUiBackend,
  tracker: C2dTracker,
  request: IncomingMessage,
  response: ServerResponse,
  url: URL,
): Promise<void> {
  const method = request.method ?? "GET";
  const path = url.pathname;
  const onlyGet = () => {
    if (method !== "GET") throw errors.methodNotAllowed(method);
  };
  if (path === "/ui/api/events") {
    onlyGet();
    streamHubEvents(response, backend.service, { hubHostName: backend.hubHostName });
    return;
  }
  if (path === "/ui/api/devices") {
    onlyGet();
    sendJson(response, 200, { hubHostName: backend.hubHostName, devices: listDeviceViews(backend) });
    return;
  }
  if (path === "/ui/api/enrollments") {
    onlyGet();
    sendJson(response, 200, enrollmentsView(backend));
    return;
  }
  const device = devicePath(path);
  if (!device) throw errors.notFound(`no such resource: ${path}`);
  const [deviceId, rest] = device;
  switch (rest) {
    case "": {
      onlyGet();
      const detail = deviceDetailView(backend, deviceId, limitParam(url.searchParams));
      if (!detail) throw deviceNotFound(deviceId);
      sendJson(response, 200, detail);
      return;
    }
    case "/telemetry":
      onlyGet();
      if (!backend.registry.getDevice(backend.hubHostName, deviceId)) throw deviceNotFound(deviceId);
      sendJson(response, 200, recentTelemetryViews(backend, deviceId, limitParam(url.searchParams)));
      return;
    case "/twin": {
      onlyGet();
      const twin = backend.service.getTwin(backend.hubHostName, deviceId);
      if (!twin) throw deviceNotFound(deviceId);
      sendJson(response, 200, twin);
      return;
    }
    case "/twin/desired": {
      if (method !== "PATCH") throw errors.methodNotAllowed(method);
      const type = request.headers["content-type"] ?? "";
      if (!/^application\/(merge-patch\+)?json\b/i.test(type)) throw errors.unsupportedMediaType();
      const desired = parseJsonObject(await readBody(request, MAX_PATCH_BYTES));
      // A JSON merge patch of the desired section; the hub validates it and pushes it to the device.
      const twin = backend.service.updateTwin(backend.hubHostName, deviceId, { properties: { desired } });
      sendJson(response, 200, twin);
      return;
    }
    default: {
      const answer = await handleCommand(backend, tracker, request, deviceId, rest);
      if (!answer) throw errors.notFound(`no such resource: ${path}`);
      sendJson(response, answer.status, answer.body);
    }
  }
}

async function handleRequest(
  options: WebUiOptions,
  token: string,
  tracker: C2dTracker,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
  const url = new URL(request.url ?? "/", "http://web-ui.invalid");
  if (!options.allowNonLoopback && !isLoopbackHost(hostHeaderName(request.headers.host ?? ""))) {
    request.resume();
    send(
      response,
      403,
      "text/plain; charset=utf-8",
      "This page only answers requests addressed to a loopback name.\n",
    );
    return;
  }
  if (!url.pathname.startsWith("/ui/api/")) {
    request.resume();
    const asset = STATIC[url.pathname];
    if (!asset) send(response, 404, "text/plain; charset=utf-8", "Not found.\n");
    else if (request.method !== "GET" && request.method !== "HEAD")
      send(response, 405, "text/plain; charset=utf-8", "Method not allowed.\n");
    else send(response, 200, asset.type, asset.body);
    return;
  }
  const presented = presentedAccessToken(request, url.searchParams, url.pathname === "/ui/api/events");
  if (!accessTokenMatches(token, presented)) {
    request.resume();
    response.setHeader("WWW-Authenticate", 'Bearer realm="azure-iot-local"');
    sendApiError(
      response,
      errors.unauthorized("open the link the emulator printed (it carries the access token)"),
    );
    return;
  }
  try {
    await handleApi(options.backend, tracker, request, response, url);
  } catch (error) {
    request.resume();
    const known = asServiceApiError(error);
    if (!known) options.onInternalError?.(error);
    sendApiError(response, known ?? errors.internal());
  }
}

/** Starts the web page's HTTP listener with a fresh access token. */
export function startWebUi(options: WebUiOptions): Promise<WebUi> {
  const host = options.host ?? "127.0.0.1";
  if (!isLoopbackHost(host) && !options.allowNonLoopback) {
    return Promise.reject(
      new WebUiHostError(
        `the web page is plain HTTP: refusing to listen on ${host}, which is not a loopback address`,
      ),
    );
  }
  const token = newAccessToken();
  const tracker = new C2dTracker(options.backend.service);
  const sockets = new Set<Socket>();
  const server: Server = createServer((request, response) => {
    request.on("error", () => undefined); // an aborted upload: the response path handles the rest
    response.on("error", () => undefined);
    handleRequest(options, token, tracker, request, response).catch((error: unknown) => {
      options.onInternalError?.(error);
      if (!response.headersSent) sendApiError(response, errors.internal());
      else response.destroy();
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    const onListenError = (error: Error) => {
      tracker.close();
      reject(error);
    };
    server.once("error", onListenError);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", onListenError);
      server.on("error", (error) => options.onInternalError?.(error));
      const port = (server.address() as AddressInfo).port;
      let closing: Promise<void> | undefined;
      resolve({
        host,
        port,
        url: `http://${urlHost(host)}:${port}/?token=${token}`,
        close: () =>
          (closing ??= new Promise<void>((done) => {
            tracker.close();
            server.close(() => done());
            // Event streams never end by themselves.
            for (const socket of sockets) socket.destroy();
          })),
      });
    });
  });
}
