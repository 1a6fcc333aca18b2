// The SDK's AMQP transports report a refused certificate, a closed port and a dropped link all as
// "NotConnectedError: rhea: connection disconnected". Before such an error reaches the user, one TLS handshake
// with the same trust settings finds the real reason ("self-signed certificate in certificate chain",
// "connection refused"), so a wrong CA or endpoint is named instead of hidden behind a retry loop.
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import { connect } from "node:tls";
import { ProxyTunnelAgent, type ResolvedProxy } from "./proxy.js";

export const DEFAULT_PORTS = { amqp: 5671, "amqp-ws": 443, https: 443, mqtt: 8883 } as const;

/**
 * What prevents a TLS session with host:port under these trust settings, or undefined when none does. Through
 * `proxy` when the connection itself goes through one: probed directly, a host the gateway may reach only
 * through its proxy would be named as unreachable, and a TLS-inspecting proxy's certificate never seen.
 */
export function tlsProblem(
  host: string,
  port: number,
  ca: string | undefined,
  timeoutMs = 5000,
  proxy?: ResolvedProxy,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    // An IPv6 address comes in brackets from host:port; SNI takes a name only (Node refuses an address there).
    const address = host.replace(/^\[|\]$/g, "");
    const servername = isIP(address) ? undefined : address;
    const options = { host: address, port, ...(ca ? { ca } : {}), ...(servername ? { servername } : {}) };
    let socket: Duplex | undefined;
    // Also gives up a tunnel still being opened: a CONNECT the proxy never answers is not left open.
    const giveUp = new AbortController();
    // Each step is idempotent, so a second answer (an error after the time-out) changes nothing.
    const done = (problem: string | undefined): void => {
      clearTimeout(timer);
      giveUp.abort();
      socket?.destroy();
      resolve(problem);
    };
    const timer = setTimeout(
      () => done(`no TLS answer from ${host}:${port} within ${timeoutMs} ms`),
      timeoutMs,
    );
    const watch = (probe: Duplex): void => {
      socket = probe; // no tunnel opens once given up: the abort ends its CONNECT first
      probe.once("secureConnect", () => done(undefined));
      probe.once("error", (error: NodeJS.ErrnoException) => done(describeFailure(error, host, port)));
    };
    if (!proxy) {
      watch(connect(options));
      return;
    }
    new ProxyTunnelAgent(proxy).createConnection({ ...options, signal: giveUp.signal }, (error, tunnel) =>
      error ? done(error.message) : watch(tunnel),
    );
  });
}

function describeFailure(error: NodeJS.ErrnoException, host: string, port: number): string {
  if (error.code === "ECONNREFUSED") return `nothing listens on ${host}:${port} (connection refused)`;
  if (error.code === "ENOTFOUND") return `the host name ${host} is unknown`;
  return /certificate|self.signed|verify/i.test(error.message)
    ? `the server's TLS certificate is not trusted (${error.message}): check the trusted CA`
    : `TLS to ${host}:${port} failed: ${error.message}`;
}

/** True for the SDK's catch-all AMQP connection failure. */
export function isOpaqueConnectionFailure(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return /NotConnectedError|connection disconnected/i.test(text);
}
