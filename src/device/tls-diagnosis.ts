// The SDK's AMQP transports report a refused certificate, a closed port and a dropped link all as
// "NotConnectedError: rhea: connection disconnected". Before such an error reaches the user, one TLS handshake
// with the same trust settings finds the real reason ("self-signed certificate in certificate chain",
// "connection refused"), so a wrong CA or endpoint is named instead of hidden behind a retry loop.
import { isIP } from "node:net";
import { connect } from "node:tls";

export const DEFAULT_PORTS = { amqp: 5671, "amqp-ws": 443, https: 443, mqtt: 8883 } as const;

/** What prevents a TLS session with host:port under these trust settings, or undefined when none does. */
export function tlsProblem(
  host: string,
  port: number,
  ca: string | undefined,
  timeoutMs = 5000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    // An IPv6 address comes in brackets from host:port; SNI takes a name only (Node refuses an address there).
    const address = host.replace(/^\[|\]$/g, "");
    const servername = isIP(address) ? undefined : address;
    const socket = connect({
      host: address,
      port,
      ...(ca ? { ca } : {}),
      ...(servername ? { servername } : {}),
    });
    const done = (problem: string | undefined): void => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no TLS answer from ${host}:${port} within ${timeoutMs} ms`));
    socket.once("secureConnect", () => done(undefined));
    socket.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED")
        return done(`nothing listens on ${host}:${port} (connection refused)`);
      if (error.code === "ENOTFOUND") return done(`the host name ${host} is unknown`);
      const certificateProblem = /certificate|self.signed|verify/i.test(error.message);
      done(
        certificateProblem
          ? `the server's TLS certificate is not trusted (${error.message}): check the trusted CA`
          : `TLS to ${host}:${port} failed: ${error.message}`,
      );
    });
  });
}

/** True for the SDK's catch-all AMQP connection failure. */
export function isOpaqueConnectionFailure(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message}` : String(error);
  return /NotConnectedError|connection disconnected/i.test(text);
}
