// An HTTP proxy between the device and Azure (docs/architecture.md "HTTP proxy"): an https.Agent that opens a
// CONNECT tunnel through the proxy (with Basic authentication when configured) and runs TLS to DPS or the hub
// inside it, so certificate checks stay end to end. Only what opens its socket through an agent can use it:
// WebSocket (amqp-ws, mqtt-ws) and HTTPS; plain AMQP and MQTT cannot.
import { request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, type AgentOptions, type RequestOptions } from "node:https";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { ConfigurationError, DeviceSessionError } from "./errors.js";

/** A proxy given in the configuration, or "whatever HTTPS_PROXY / NO_PROXY say". */
export type ProxyConfig =
  | {
      /** http://host:port (a bare host:port is taken as http). */
      url: string;
      username?: string;
      password?: string;
      /** Hosts reached directly: "name", ".suffix" / "*.suffix", "host:port", "[IPv6]:port", "*" for all. */
      noProxy?: string[];
    }
  | { fromEnvironment: true };

export interface ResolvedProxy {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** The proxy refused the tunnel or could not be reached. Retried: a proxy comes back, a password is fixed. */
export class ProxyError extends DeviceSessionError {
  override name = "ProxyError";
  constructor(
    message: string,
    /** The proxy's HTTP status for a refused CONNECT (407: authentication). Not `statusCode`: not DPS's. */
    readonly proxyStatus?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The proxy for `host:port`, or undefined for a direct connection. */
export function proxyFor(
  host: string,
  port: number,
  config: ProxyConfig | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedProxy | undefined {
  if (!config) return undefined;
  const { url, username, password, noProxy }: ProxySettings =
    "fromEnvironment" in config ? environmentProxy(env) : config;
  if (!url?.trim()) return undefined;
  if (bypasses(host, port, noProxy ?? [])) return undefined;
  const proxy = parseProxyUrl(url);
  // Credentials set apart from the URL win over those in it.
  if (username) proxy.username = username;
  if (password) proxy.password = password;
  return proxy;
}

interface ProxySettings {
  url?: string;
  username?: string;
  password?: string;
  noProxy?: readonly string[];
}

/** HTTPS_PROXY and NO_PROXY, or their lower-case forms; credentials only in the URL. */
function environmentProxy(env: NodeJS.ProcessEnv): ProxySettings {
  return {
    url: env.HTTPS_PROXY ?? env.https_proxy,
    noProxy: (env.NO_PROXY ?? env.no_proxy)?.split(/[,\s]+/),
  };
}

/** True when `host:port` is on the no-proxy list (curl's rules, without CIDR ranges). */
export function bypasses(host: string, port: number, entries: readonly string[]): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, "");
  for (const raw of entries) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === "*") return true;
    // name:port or [IPv6]:port; a bare IPv6 address has colons of its own and no port.
    const withPort = /^(\[[^\]]*\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort?.[1]) {
      if (Number(withPort[2]) !== port) continue;
      entry = withPort[1];
    }
    entry = entry.replace(/^\[|\]$/g, "").replace(/^\*?\./, "");
    if (name === entry || name.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function parseProxyUrl(text: string): ResolvedProxy {
  const trimmed = text.trim();
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`);
  } catch {
    // Never quote it: it may carry a password.
    throw new ConfigurationError("the HTTP proxy is not a URL like http://proxy.example:3128");
  }
  if (url.protocol !== "http:") {
    throw new ConfigurationError(`the HTTP proxy must be an http:// URL (not ${url.protocol}//)`);
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : 80,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
  };
}

/**
 * An https.Agent whose every connection is a CONNECT tunnel through `proxy`. Connections are not kept for
 * reuse: each WebSocket or DPS request opens its own tunnel, and a dead proxy fails the next one at once.
 */
export class ProxyTunnelAgent extends HttpsAgent {
  /**
   * Why the latest tunnel failed (cleared by one that opens): some transports (MQTT over WebSocket) report only
   * "unable to connect", so the caller can say what really happened.
   */
  lastFailure: ProxyError | undefined;

  constructor(
    readonly proxy: ResolvedProxy,
    tlsOptions: AgentOptions = {},
  ) {
    super({ ...tlsOptions, keepAlive: false });
  }

  // Node's Agent takes the socket from this callback when createConnection returns nothing.
  override createConnection(
    requestOptions: RequestOptions,
    callback?: (error: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    // The request's TLS options (ca, cert, key, servername) come with it; they apply inside the tunnel.
    const options = requestOptions as ConnectionOptions & {
      host?: string | null;
      port?: number | string | null;
      signal?: AbortSignal;
    };
    const target = `${formatHost(options.host ?? "localhost")}:${options.port ?? 443}`;
    const proxyName = `${formatHost(this.proxy.host)}:${this.proxy.port}`;
    let settled = false;
    const done = (error: ProxyError | null, socket?: Socket): void => {
      if (settled) return;
      settled = true;
      this.lastFailure = error ?? undefined;
      callback?.(error, socket as Duplex);
    };
    const headers: Record<string, string> = { host: target };
    if (this.proxy.username !== undefined || this.proxy.password !== undefined) {
      const credentials = `${this.proxy.username ?? ""}:${this.proxy.password ?? ""}`;
      headers["proxy-authorization"] = `Basic ${Buffer.from(credentials).toString("base64")}`;
    }
    const connect = httpRequest({
      host: this.proxy.host,
      port: this.proxy.port,
      method: "CONNECT",
      path: target,
      headers,
      agent: false,
      signal: options.signal, // a request given up also gives up its tunnel
    });
    connect.once("connect", (response: IncomingMessage, socket: Socket, head: Buffer) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        const status = `${response.statusCode ?? "?"} ${response.statusMessage ?? ""}`.trim();
        // 407 is the standard answer; some proxies (tinyproxy) answer a failed Basic login with 401.
        const hint =
          response.statusCode === 407 || response.statusCode === 401
            ? " (check the proxy user name and password)"
            : "";
        done(
          new ProxyError(
            `the HTTP proxy ${proxyName} refused the tunnel to ${target}: ${status}${hint}`,
            response.statusCode,
          ),
        );
        return;
      }
      if (head.length > 0) socket.unshift(head);
      const servername = options.servername ?? options.host ?? undefined;
      const secure = tlsConnect({
        ...options,
        host: options.host ?? undefined,
        port: undefined,
        socket,
        // SNI takes a name only; an IP address there is refused by Node.
        servername: servername && !isIP(servername) ? servername : undefined,
      });
      done(null, secure);
    });
    connect.once("error", (error: Error) =>
      done(
        new ProxyError(`cannot reach the HTTP proxy ${proxyName}: ${error.message}`, undefined, {
          cause: error,
        }),
      ),
    );
    connect.end();
    return undefined;
  }
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
