// Server-Sent Events (HTML Living Standard §9.2) for the emulator's live views: hub telemetry and device
// connection changes, as they happen. Listeners and the keep-alive timer go away with the connection.
import type { ServerResponse } from "node:http";
import type { ConnectionEvent, HubService, TelemetryRecord } from "../hub/types.js";
import { telemetryJson } from "./telemetry-json.js";

/** A comment line this often keeps proxies and browsers from timing the stream out. */
const KEEP_ALIVE_MS = 15_000;

export interface EventStreamFilter {
  hubHostName: string;
  /** Only this device's events; all devices of the hub when absent. */
  deviceId?: string;
}

function matches(filter: EventStreamFilter, event: { hubHostName: string; deviceId: string }): boolean {
  if (event.hubHostName.toLowerCase() !== filter.hubHostName.toLowerCase()) return false;
  return filter.deviceId === undefined || event.deviceId === filter.deviceId;
}

/** Takes over `response` and streams until the client goes away or `response` is destroyed. */
export function streamHubEvents(
  response: ServerResponse,
  service: HubService,
  filter: EventStreamFilter,
): void {
  response.writeHead(200, {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    Connection: "keep-alive",
    "X-Accel-Buffering": "no",
  });
  let nextId = 1;
  const send = (event: string, data: unknown) => {
    if (response.destroyed || response.writableEnded) return;
    response.write(`id: ${nextId++}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const onTelemetry = (record: TelemetryRecord) => {
    if (matches(filter, record)) send("telemetry", telemetryJson(record));
  };
  const onConnection = (event: ConnectionEvent) => {
    if (matches(filter, event)) send("connection", event);
  };
  service.on("telemetry", onTelemetry);
  service.on("connection", onConnection);
  const keepAlive = setInterval(() => {
    if (!response.destroyed) response.write(": keep-alive\n\n");
  }, KEEP_ALIVE_MS);
  keepAlive.unref();
  const stop = () => {
    clearInterval(keepAlive);
    service.off("telemetry", onTelemetry);
    service.off("connection", onConnection);
  };
  response.on("close", stop);
  response.on("error", stop);
  response.write(": stream open\n\n");
}
