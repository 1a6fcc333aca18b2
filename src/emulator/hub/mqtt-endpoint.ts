// The emulated IoT Hub's MQTT endpoint (docs/hub-mqtt-protocol.md): MQTT 3.1.1 over TLS (port 8883 on Azure)
// and the MQTT streams that arrive over WebSocket; the sessions by device, as the hub's other parts reach them.
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { createServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import type { ConnectionEvent } from "./types.js";
import type { DeviceTransport } from "./device-transports.js";
import type { DesiredChange } from "./device-store.js";
import { peerCertificateInfo } from "./link-authorization.js";
import { MqttDeviceSession, type MqttSessionParts } from "./mqtt-session.js";
import { emitSafely } from "./service-events.js";

export interface MqttEndpointOptions {
  host: string;
  /** 0 = a free port; undefined = no TLS listener of its own (MQTT over WebSocket only). */
  port?: number;
  tls: { key: string; cert: string; clientCa?: string[] };
}

export type MqttEndpointParts = Omit<MqttSessionParts, "opened" | "closed" | "peer"> & {
  /** The device has a connection on another transport (no "connection" event then). */
  connectedElsewhere(hubHostName: string, deviceId: string): boolean;
};

export class MqttEndpoint implements DeviceTransport {
  private server: TlsServer | undefined;
  /** Every stream being served, authenticated or not (closed with the hub). */
  private readonly sessions = new Set<MqttDeviceSession>();
  boundPort = 0;

  constructor(
    private readonly options: MqttEndpointOptions,
    private readonly parts: MqttEndpointParts,
  ) {
    parts.methods.addChannel({
      canInvoke: (hubHostName, deviceId) =>
        this.sessionsOf(hubHostName, deviceId).some((session) => session.listensForMethods()),
      send: (hubHostName, deviceId, requestId, methodName, payload) =>
        this.sessionsOf(hubHostName, deviceId)
          .find((session) => session.listensForMethods())
          ?.sendMethodRequest(requestId, methodName, payload),
    });
    parts.c2d.onPending((hubHostName, deviceId) => {
      for (const session of this.sessionsOf(hubHostName, deviceId)) session.pullC2d();
    });
  }

  async listen(): Promise<void> {
    const { host, port, tls } = this.options;
    if (port === undefined) return;
    const server = createServer(
      {
        key: tls.key,
        cert: tls.cert,
        ...(tls.clientCa && tls.clientCa.length > 0 ? { ca: tls.clientCa } : {}),
        // X.509 devices present a certificate, SAS devices none: checked at CONNECT, not in the handshake.
        requestCert: true,
        rejectUnauthorized: false,
      },
      (socket) => this.serveStream(socket, socket),
    );
    server.on("tlsClientError", () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        server.on("error", (error: Error) => this.parts.log(`MQTT listener error: ${error.message}`));
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
  }

  /** Serves one MQTT byte stream: a TLS socket, or a WebSocket (MqttWs) carried in one. */
  serveStream(stream: Duplex, tlsSocket: TLSSocket): void {
    const clientCaConfigured = (this.options.tls.clientCa?.length ?? 0) > 0;
    const session: MqttDeviceSession = new MqttDeviceSession(stream, tlsSocket, {
      ...this.parts,
      peer: (socket) => peerCertificateInfo(socket, clientCaConfigured),
      opened: (opened) => this.opened(opened),
      closed: (_closed, hubHostName, deviceId) => this.closed(hubHostName, deviceId),
    });
    this.sessions.add(session);
    tlsSocket.once("close", () => this.sessions.delete(session));
  }

  async close(): Promise<void> {
    for (const session of [...this.sessions]) session.close();
    this.sessions.clear();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  isConnected(hubHostName: string, deviceId: string): boolean {
    return this.sessionsOf(hubHostName, deviceId).length > 0;
  }

  connectionCount(): number {
    return [...this.sessions].filter((session) => session.isOpen).length;
  }

  disconnectDevice(hubHostName: string, deviceId: string, description: string): void {
    const sessions = this.sessionsOf(hubHostName, deviceId);
    if (sessions.length > 0) this.parts.log(`MQTT connection of ${deviceId} closed: ${description}`);
    for (const session of sessions) session.close();
  }

  pushDesired(hubHostName: string, deviceId: string, change: DesiredChange): void {
    for (const session of this.sessionsOf(hubHostName, deviceId)) session.pushDesired(change);
  }

  dropConnection(hubHostName: string, deviceId: string): boolean {
    const sessions = this.sessionsOf(hubHostName, deviceId);
    for (const session of sessions) session.drop();
    return sessions.length > 0;
  }

  private sessionsOf(hubHostName: string, deviceId: string): MqttDeviceSession[] {
    const hub = hubHostName.toLowerCase();
    return [...this.sessions].filter(
      (session) =>
        session.isOpen && session.deviceId === deviceId && session.hubHostName?.toLowerCase() === hub,
    );
  }

  private opened(session: MqttDeviceSession): void {
    const { hubHostName, deviceId } = session;
    if (hubHostName === undefined || deviceId === undefined) return;
    const earlier = this.sessionsOf(hubHostName, deviceId).filter((other) => other !== session);
    const wasConnected = earlier.length > 0 || this.parts.connectedElsewhere(hubHostName, deviceId);
    // One MQTT connection per device: a new one closes the one before (as on IoT Hub).
    for (const other of earlier) other.close();
    if (!wasConnected) this.emitConnection(hubHostName, deviceId, true);
  }

  private closed(hubHostName: string, deviceId: string): void {
    if (this.isConnected(hubHostName, deviceId) || this.parts.connectedElsewhere(hubHostName, deviceId))
      return;
    this.emitConnection(hubHostName, deviceId, false);
  }

  private emitConnection(hubHostName: string, deviceId: string, connected: boolean): void {
    const event: ConnectionEvent = { hubHostName, deviceId, connected };
    emitSafely(this.parts.events, "connection", event);
  }
}
