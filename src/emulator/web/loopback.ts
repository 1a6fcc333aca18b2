// Loopback checks for the web page's listener: it speaks plain HTTP, so by default it must only be reachable
// from this machine, and it only answers requests addressed to a loopback name (a DNS-rebinding page on some
// other origin would carry its own host name in the Host header).
import { isIP } from "node:net";

/** True for "localhost", 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses. */
export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (name === "localhost") return true;
  if (isIP(name) === 4) return name.startsWith("127.");
  if (isIP(name) === 6) return name === "::1" || /^::ffff:127\./.test(name);
  return false;
}

/** The host part of a Host header ("name:port", "[v6]:port" or "name"). */
export function hostHeaderName(header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed) return bracketed[1] ?? "";
  const colon = header.lastIndexOf(":");
  return colon >= 0 && header.indexOf(":") === colon ? header.slice(0, colon) : header;
}

/** "host" as it goes into a URL: IPv6 addresses in brackets. */
export function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}
