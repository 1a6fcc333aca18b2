// The DPS service connection: the connection string of a shared access policy with enrollment write rights
// ("HostName=...;SharedAccessKeyName=...;SharedAccessKey=..."), and where to reach the service. The key
// never leaves this object: `description` is what logs, errors and status texts may show.
import { isIP } from "node:net";

export interface ServiceConnection {
  /** The host name as in the connection string: what the SAS token names as its resource. */
  hostName: string;
  keyName: string;
  /** base64 policy key. */
  key: string;
  /** Where requests go: the host name, or the endpoint given besides (an emulator, a private endpoint). */
  connectHost: string;
  connectPort: number;
  /** "provisioningserviceowner @ host[:port]", free of secrets. */
  description: string;
}

export class ServiceConnectionError extends Error {
  override readonly name = "ServiceConnectionError";
}

const HTTPS_PORT = 443;

/** "host", "host:port", "[v6]:port" or "https://host:port/" into host and port (443 when absent). */
export function splitHostPort(text: string): { host: string; port: number } {
  const trimmed = text
    .trim()
    .replace(/^https:\/\//i, "")
    .replace(/\/+$/, "");
  if (!trimmed || /[/\s]/.test(trimmed)) throw new ServiceConnectionError(`"${text}" is not a host name`);
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(trimmed);
  if (bracketed) return { host: bracketed[1] ?? "", port: portOf(bracketed[2], text) };
  if (isIP(trimmed) === 6) return { host: trimmed, port: HTTPS_PORT };
  const [host = "", port, extra] = trimmed.split(":");
  if (extra !== undefined || !host) throw new ServiceConnectionError(`"${text}" is not a host name`);
  return { host, port: portOf(port, text) };
}

function portOf(value: string | undefined, text: string): number {
  if (value === undefined) return HTTPS_PORT;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
    throw new ServiceConnectionError(`the port in "${text}" must be a number from 1 to 65535`);
  }
  return port;
}

/**
 * Parses the connection string (and the optional endpoint). Errors name the missing part, never the key.
 */
export function parseServiceConnection(connectionString: string, endpoint?: string): ServiceConnection {
  const fields = new Map<string, string>();
  for (const part of (connectionString ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const hostName = fields.get("hostname") ?? "";
  const keyName = fields.get("sharedaccesskeyname") ?? "";
  const key = fields.get("sharedaccesskey") ?? "";
  const missing = [
    hostName ? "" : "HostName",
    keyName ? "" : "SharedAccessKeyName",
    key ? "" : "SharedAccessKey",
  ].filter(Boolean);
  if (missing.length > 0) {
    throw new ServiceConnectionError(
      `the DPS service connection string lacks ${missing.join(", ")} ` +
        `(expected HostName=<dps>.azure-devices-provisioning.net;SharedAccessKeyName=<policy>;SharedAccessKey=<key>)`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || Buffer.from(key, "base64").length < 16) {
    throw new ServiceConnectionError(
      "the SharedAccessKey of the DPS service connection string is not a base64 key",
    );
  }
  const target = splitHostPort(endpoint?.trim() ? endpoint : hostName);
  return {
    hostName,
    keyName,
    key,
    connectHost: target.host,
    connectPort: target.port,
    description: `${keyName} @ ${hostName}`,
  };
}
