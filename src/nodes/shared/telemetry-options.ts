// Telemetry options taken from a Node-RED message (msg.properties, msg.messageId, ...).
import type { NodeMessage } from "node-red";
import type { TelemetryOptions } from "../../device/index.js";
import { NodeInputError } from "./messages.js";

const STRING_OPTIONS = ["messageId", "correlationId", "contentType", "contentEncoding", "component"] as const;

/** Telemetry options from the msg; a wrong type is an error the user must see, not a silent default. */
export function telemetryOptionsOf(msg: NodeMessage): TelemetryOptions {
  const options: TelemetryOptions = {};
  for (const name of STRING_OPTIONS) {
    const value = msg[name];
    if (value === undefined || value === null || value === "") continue;
    if (typeof value !== "string") throw new NodeInputError("optionNotString", { name });
    options[name] = value;
  }
  if (msg.properties !== undefined && msg.properties !== null) {
    if (typeof msg.properties !== "object" || Array.isArray(msg.properties)) {
      throw new NodeInputError("propertiesNotObject");
    }
    options.properties = Object.fromEntries(
      Object.entries(msg.properties as Record<string, unknown>).map(([key, value]) => [
        key,
        typeof value === "string" ? value : JSON.stringify(value),
      ]),
    );
  }
  return options;
}
