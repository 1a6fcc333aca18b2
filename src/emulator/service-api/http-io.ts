// Reading request bodies and writing JSON responses for the service REST API, with the bounds that keep a
// bad client from exhausting memory: bodies over the limit are refused with 413 and never buffered whole.
import type { IncomingMessage, ServerResponse } from "node:http";
import { errors, renderError, type ErrorFlavour, type ServiceApiError } from "./errors.js";

/** 256 KiB: the largest thing Azure accepts through these APIs (a D2C message); twin sections are 32 KB. */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;

export function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      request.resume(); // drain, so the socket can carry the 413
      reject(errors.payloadTooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    request.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(errors.payloadTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    request.on("error", (error) => {
      if (failed) return;
      failed = true;
      reject(error);
    });
  });
}

/** Parses a JSON body; an empty body is `undefined`. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    throw errors.invalidJson("the request body is not valid JSON");
  }
}

export function parseJsonObject(body: Buffer): Record<string, unknown> {
  const value = parseJson(body);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw errors.badRequest("the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (response.headersSent || response.destroyed) return;
  if (status === 204 || body === undefined) {
    response.writeHead(status, headers);
    response.end();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(text)),
    ...headers,
  });
  response.end(text);
}

export function sendError(response: ServerResponse, error: ServiceApiError, flavour: ErrorFlavour): void {
  const rendered = renderError(error, flavour);
  sendJson(response, rendered.status, rendered.body, rendered.headers);
}

/** The If-Match header without its quotes; undefined for none or "*" (match anything). */
export function ifMatchHeader(request: IncomingMessage): string | undefined {
  const raw = request.headers["if-match"];
  if (typeof raw !== "string") return undefined;
  const unquoted = raw
    .trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
  return unquoted === "*" || unquoted === "" ? undefined : unquoted;
}
