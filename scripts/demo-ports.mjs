// The demo's ports: each one comes from a DEMO_* variable, and a busy one is reported by that variable's name
// before anything is started (and again if it is taken in between).
import { createServer } from "node:net";

/** The demo's ports, by the variable that moves each one, with their defaults. */
export const PORT_VARIABLES = {
  DEMO_EDITOR_PORT: { default: 1880, what: "the Node-RED editor" },
  DEMO_UI_PORT: { default: 8080, what: "the emulator page" },
  DEMO_DPS_AMQP_PORT: { default: 25671, what: "DPS over AMQP" },
  DEMO_DPS_HTTPS_PORT: { default: 25443, what: "DPS over HTTPS" },
  DEMO_DPS_MQTT_PORT: { default: 28883, what: "DPS over MQTT" },
  DEMO_HUB_PORT: { default: 5671, what: "the IoT hub (AMQP)" },
  DEMO_SERVICE_PORT: { default: 25444, what: "the service REST API" },
};

export class DemoPortError extends Error {
  name = "DemoPortError";
}

/** Port numbers by variable name, from the environment; throws DemoPortError naming a malformed variable. */
export function demoPorts(env = process.env) {
  const ports = {};
  for (const [variable, { default: fallback }] of Object.entries(PORT_VARIABLES)) {
    const text = env[variable] ?? String(fallback);
    const port = Number(text);
    if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
      throw new DemoPortError(`${variable}=${text} is not a port number (1-65535)`);
    }
    ports[variable] = port;
  }
  return ports;
}

function isFree(port, host) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** How to fix a busy port: which variable to set, with an example. */
export function busyPortAdvice(variable, port) {
  return (
    `port ${port} (${PORT_VARIABLES[variable]?.what ?? variable}) is in use: ` +
    `choose another with ${variable}, e.g. ${variable}=${port + 1} npm run demo`
  );
}

/** Throws DemoPortError listing every busy port and the variable that moves it. */
export async function assertPortsFree(ports, host = "127.0.0.1") {
  const busy = [];
  for (const [variable, port] of Object.entries(ports)) {
    if (!(await isFree(port, host))) busy.push(busyPortAdvice(variable, port));
  }
  if (busy.length > 0) throw new DemoPortError(busy.join("\n"));
}

/** The variable behind a port a server could not listen on (EADDRINUSE), if it is one of ours. */
export function variableOfPort(ports, port) {
  return Object.entries(ports).find(([, value]) => value === port)?.[0];
}
