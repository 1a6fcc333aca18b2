// Route table types for the service REST API. A route names its realm: which shared access policy may call
// it (DPS routes take the DPS service key, hub routes the hub's, emulator-only routes either) and which
// error shape it answers with.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceCaller } from "./auth.js";

export type Realm = "dps" | "hub" | "emulator";

export interface RouteContext {
  request: IncomingMessage;
  response: ServerResponse;
  /** Decoded path parameters, in the order of the pattern's groups. */
  params: string[];
  query: URLSearchParams;
  caller: ServiceCaller;
  /** The realm of the policy that authenticated the caller. */
  callerRealm: "dps" | "hub";
  /** The raw body (bounded); throws ServiceApiError 413. */
  body(): Promise<Buffer>;
  /** The body as a JSON object; throws ServiceApiError 400/413. */
  json(): Promise<Record<string, unknown>>;
}

export interface RouteResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Route {
  method: "GET" | "PUT" | "PATCH" | "POST" | "DELETE";
  /** Matched against the raw (still percent-encoded) path without the query string; groups are decoded. */
  path: RegExp;
  realm: Realm;
  /** Returns the response, or "streaming" when the handler took over the response (SSE). */
  handle(context: RouteContext): Promise<RouteResult | "streaming"> | RouteResult | "streaming";
}

/** Finds the route for a path: the params, or "method" when the path exists with another method. */
export function matchRoute(
  routes: readonly Route[],
  method: string,
  path: string,
): { route: Route; params: string[] } | "method" | "bad-encoding" | undefined {
  let pathExists = false;
  for (const route of routes) {
    const match = route.path.exec(path);
    if (!match) continue;
    pathExists = true;
    if (route.method !== method) continue;
    try {
      return { route, params: match.slice(1).map((group) => decodeURIComponent(group ?? "")) };
    } catch {
      return "bad-encoding";
    }
  }
  return pathExists ? "method" : undefined;
}
