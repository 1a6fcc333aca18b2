// The emulated hub's HTTPS port (443 on Azure): MQTT and AMQP over WebSocket on /$iothub/websocket
// (subprotocols "mqtt" and "AMQPWSB10"), the device HTTPS API, and the service REST API on the other paths when
// it shares the port (docs/hub-mqtt-protocol.md §7, §8).
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { acceptWebSocket } from "../dps/websocket.js";
import { isDeviceApiPath, type DeviceHttpsApi } from "./device-https-api.js";

export const WEBSOCKET_PATH = "/$iothub/websocket";
const MAX_BODY_BYTES = 512 * 1024;
const IDLE_TIMEOUT_MS = 240_000;

export interface HubHttpsOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string; clientCa?: string[] };
  webSockets: {
    mqtt(stream: Duplex, tlsSocket: TLSSocket): void;
    amqp(stream: Duplex, tlsSocket: TLSSocket): void;
  };
  api: DeviceHttpsApi;
  /** Requests off the device API's paths, when another API shares the port; without it the device API 404s them. */
  otherRequests?: (req: IncomingMessage, res: ServerResponse) => void;
  log(line: string): void;
}

export interface HubHttpsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHubHttpsServer(options: HubHttpsOptions): Promise<HubHttpsServer> {
  const sockets = new Set<TLSSocket>();
  const server: Server = createServer(
    {
      key: options.tls.key,
      cert: options.tls.cert,
      ...(options.tls.clientCa && options.tls.clientCa.length > 0 ? { ca: options.tls.clientCa } : {}),
      // X.509 devices present a certificate (checked per request or per CONNECT / attach), SAS devices none.
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      if (options.otherRequests && !isDeviceApiPath(req.url)) {
        options.otherRequests(req, res);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          res.writeHead(413, { Connection: "close" }).end();
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => {
        if (size <= MAX_BODY_BYTES) options.api.handle(req, res, Buffer.concat(chunks));
      });
      req.on("error", () => req.destroy());
    },
  );
  server.on("secureConnection", (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const tlsSocket = socket as TLSSocket;
    tlsSocket.on("error", () => tlsSocket.destroy());
    const path = new URL(req.url ?? "/", "https://hub.invalid").pathname;
    if (path !== WEBSOCKET_PATH) {
      // A clear refusal: the SDKs otherwise wait for their operation timeout.
      const text = `The IoT hub serves WebSockets on ${WEBSOCKET_PATH} only.`;
      tlsSocket.end(
        `HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
          `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
      );
      return;
    }
    const accepted = acceptWebSocket(req, tlsSocket, head, ["mqtt", "AMQPWSB10"]);
    if (!accepted) return;
    tlsSocket.setTimeout(0);
    if (accepted.protocol === "mqtt") options.webSockets.mqtt(accepted.stream, tlsSocket);
    else options.webSockets.amqp(accepted.stream, tlsSocket);
  });
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      server.on("error", (error: Error) => options.log(`hub HTTPS listener error: ${error.message}`));
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        sockets.clear();
      }),
  };
}
