// What the three DPS front ends share: TLS material, the listener handle, client certificate chains and
// closing every open socket when the emulator stops.
import { X509Certificate } from "node:crypto";
import type { AddressInfo, Server } from "node:net";
import type { TLSSocket, PeerCertificate, DetailedPeerCertificate } from "node:tls";

export interface DpsTls {
  /** Server key and certificate (PEM); the certificate must name the host devices connect to. */
  key: string;
  cert: string;
  /** CAs whose names are sent in the certificate request (optional; chains are checked against enrollments). */
  clientCa?: string[];
}

export interface Listener {
  readonly port: number;
  close(): Promise<void>;
}

/** The client's certificate chain as it was presented, leaf first. Empty when it sent none. */
export function peerChain(socket: TLSSocket): X509Certificate[] {
  let peer: PeerCertificate | DetailedPeerCertificate | undefined;
  try {
    peer = socket.getPeerCertificate(true);
  } catch {
    return [];
  }
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current = peer as DetailedPeerCertificate | undefined;
  while (current?.raw && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    try {
      chain.push(new X509Certificate(current.raw));
    } catch {
      break;
    }
    current = current.issuerCertificate;
  }
  return chain;
}

/** Remembers the server's sockets; the returned function destroys those still open. */
export function trackSockets(server: Server, event: "connection" | "secureConnection"): () => void {
  const sockets = new Set<{ destroy(): void; once(e: "close", l: () => void): unknown }>();
  server.on(event, (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  return () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
}

/**
 * Listens on host:port and returns the Listener: errors after start-up are logged, a TLS handshake a client
 * breaks off is ignored, and close() also ends the sockets still open.
 */
export async function listen(
  server: Server,
  host: string,
  port: number,
  label: string,
  log: (line: string) => void,
): Promise<Listener> {
  server.on("tlsClientError", () => undefined);
  server.on("error", (error: Error) => log(`${label} listener error: ${error.message}`));
  const closeSockets = trackSockets(server, "connection");
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        closeSockets();
      }),
  };
}
