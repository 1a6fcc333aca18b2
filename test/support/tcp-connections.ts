// Which TCP connections this machine has open to a host, read from Linux's /proc/net/tcp: lets a test see
// which port (5671, 8883, 443) a client really dialled, or that a connection attempt was given up, without
// touching the client.
import { readFileSync } from "node:fs";

const ESTABLISHED = "01";
const SYN_SENT = "02";

/** The remote ports of IPv4 connections to `host` (a dotted-quad address) in the TCP state `state`. */
function remotePortsTo(host: string, state: string): number[] {
  // /proc/net/tcp writes an IPv4 address as one little-endian 32-bit hex word.
  const wanted = host
    .split(".")
    .map((octet) => Number(octet).toString(16).padStart(2, "0").toUpperCase())
    .reverse()
    .join("");
  const ports: number[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [address, port] = (fields[2] ?? "").split(":");
    if (address === wanted && fields[3] === state && port) ports.push(parseInt(port, 16));
  }
  return ports.sort((a, b) => a - b);
}

/** The remote ports of established IPv4 connections to `host` (a dotted-quad address). */
export function establishedPortsTo(host: string): number[] {
  return remotePortsTo(host, ESTABLISHED);
}

/** The remote ports of IPv4 connections to `host` still waiting for the peer's SYN-ACK (connect() pending). */
export function connectingPortsTo(host: string): number[] {
  return remotePortsTo(host, SYN_SENT);
}
