// A device connection string as the Azure portal and the other Node-RED packages give it
// (HostName=...;DeviceId=...;SharedAccessKey=...), read for connecting without DPS. Errors name the part that
// is wrong and never quote the string: it holds the device key.
import { ConfigurationError } from "./errors.js";

export interface DeviceConnectionString {
  hostName: string;
  deviceId: string;
  sharedAccessKey: string;
}

/** What is wrong with a connection string, so that an adapter can say it in the user's language. */
export type ConnectionStringProblem =
  "empty" | "notPairs" | "missing" | "moduleId" | "signature" | "x509" | "edge" | "hubPolicy";

/** A connection string that cannot be used; `missing` names the absent parts (problem "missing"). */
export class ConnectionStringError extends ConfigurationError {
  override name = "ConnectionStringError";
  constructor(
    readonly problem: ConnectionStringProblem,
    message: string,
    readonly missing: readonly string[] = [],
  ) {
    super(message);
  }
}

/** Parts that name something this package does not connect to; refused by name rather than ignored. */
const UNSUPPORTED: Readonly<Record<string, { problem: ConnectionStringProblem; reason: string }>> = {
  moduleid: {
    problem: "moduleId",
    reason: "a module identity (ModuleId): use the device's own connection string",
  },
  sharedaccesssignature: {
    problem: "signature",
    reason: "a ready-made SharedAccessSignature: use the device key (SharedAccessKey)",
  },
  x509: {
    problem: "x509",
    reason: "x509=true: choose the hub host name + X.509 certificate identity instead",
  },
  gatewayhostname: { problem: "edge", reason: "GatewayHostName (IoT Edge): connect to the hub itself" },
  sharedaccesskeyname: {
    problem: "hubPolicy",
    reason: "a hub-level policy (SharedAccessKeyName): use a device connection string",
  },
};

export function parseDeviceConnectionString(text: unknown): DeviceConnectionString {
  if (typeof text !== "string" || text.trim() === "") {
    throw new ConnectionStringError("empty", "the device connection string is empty");
  }
  const parts = new Map<string, string>();
  for (const part of text.trim().split(";")) {
    if (part.trim() === "") continue;
    const equals = part.indexOf("=");
    // Never echo the part: it may be (part of) the key.
    if (equals <= 0) {
      throw new ConnectionStringError("notPairs", "the device connection string is not Name=value;… pairs");
    }
    parts.set(part.slice(0, equals).trim().toLowerCase(), part.slice(equals + 1).trim());
  }
  for (const [name, { problem, reason }] of Object.entries(UNSUPPORTED)) {
    if (parts.has(name))
      throw new ConnectionStringError(problem, `the device connection string holds ${reason}`);
  }
  const hostName = parts.get("hostname");
  const deviceId = parts.get("deviceid");
  const sharedAccessKey = parts.get("sharedaccesskey");
  const missing = [
    hostName ? undefined : "HostName",
    deviceId ? undefined : "DeviceId",
    sharedAccessKey ? undefined : "SharedAccessKey",
  ].filter((name) => name !== undefined);
  if (missing.length > 0) {
    throw new ConnectionStringError(
      "missing",
      `the device connection string has no ${missing.join(", ")}`,
      missing,
    );
  }
  return { hostName: hostName!, deviceId: deviceId!, sharedAccessKey: sharedAccessKey! };
}
