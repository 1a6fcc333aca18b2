// One device's MQTT 3.1.1 connection to the emulated IoT Hub (docs/hub-mqtt-protocol.md): CONNECT
// authentication, subscriptions, telemetry, twin requests, method responses, and the hub's publishes to the
// device (twin responses, desired patches, method requests, cloud-to-device messages).
import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import {
  generate,
  parser as createParser,
  type IConnectPacket,
  type IPublishPacket,
  type Packet,
} from "mqtt-packet";
import type { C2dDispatch, C2dLease } from "./c2d-dispatch.js";
import {
  checkDeviceCertificate,
  checkDeviceSasToken,
  servedHostName,
  type CredentialContext,
} from "./device-credentials.js";
import type { PeerCertificateInfo } from "./device-connections.js";
import type { DesiredChange, DeviceStore } from "./device-store.js";
import type { FaultInjection } from "./fault-injection.js";
import type { MethodInvoker } from "./method-invoker.js";
import {
  c2dTopic,
  desiredPatchTopic,
  methodRequestTopic,
  parseDevicePublish,
  parseSubscription,
  telemetryMessage,
  twinResponseTopic,
  type DeviceSubscription,
} from "./mqtt-topics.js";
import { emitSafely } from "./service-events.js";
import { takeTelemetry } from "./telemetry-intake.js";
import type { TelemetryLog } from "./telemetry.js";
import { answerReportedPatch, answerTwinGet, type TwinAnswer } from "./twin-requests.js";
import type { TwinSubscriptionEvent } from "./types.js";

/** CONNACK return codes, MQTT 3.1.1 §3.2.2.3. */
export const ConnackCode = {
  accepted: 0,
  unacceptableProtocol: 1,
  identifierRejected: 2,
  badUsernameOrPassword: 4,
  notAuthorized: 5,
} as const;

const SUBACK_FAILURE = 0x80;
/** IoT Hub's longest keep-alive (docs/hub-mqtt-protocol.md §2.3): 1767 s; the hub waits 1.5 times that. */
const MAX_KEEP_ALIVE_S = 1767;
const CONNECT_TIMEOUT_MS = 30_000;
/** MQTT packets bigger than IoT Hub's 256 KB message plus topic room end the connection. */
const MAX_PACKET_BYTES = 256 * 1024 + 64 * 1024;
/** C2D messages out on one connection and not yet acknowledged. */
const C2D_IN_FLIGHT = 10;
/** "{host}/{deviceId}/..." with the api-version query after a "?" or directly (the Node SDK omits the "?"). */
const USERNAME = /^([^/]+)\/([^/]+)\/(.*)$/;

export interface MqttSessionParts {
  credentials: CredentialContext;
  store: DeviceStore;
  telemetry: TelemetryLog;
  events: EventEmitter;
  faults: FaultInjection;
  c2d: C2dDispatch;
  methods: MethodInvoker;
  /** The client certificate under the connection (also under a WebSocket). */
  peer(tlsSocket: TLSSocket): PeerCertificateInfo | undefined;
  /** The session authenticated (CONNACK 0 sent) or ended. */
  opened(session: MqttDeviceSession): void;
  closed(session: MqttDeviceSession, hubHostName: string, deviceId: string): void;
  log(line: string): void;
}

type SessionState =
  | { phase: "awaiting-connect" }
  | {
      phase: "connected";
      hubHostName: string;
      deviceId: string;
      method: "sas" | "x509";
      expiryTimer?: NodeJS.Timeout;
    }
  | { phase: "closed" };

export class MqttDeviceSession {
  private state: SessionState = { phase: "awaiting-connect" };
  private readonly subscriptions = new Map<DeviceSubscription, 0 | 1>();
  private readonly c2dInFlight = new Map<number, C2dLease>();
  private nextPacketId = 1;

  constructor(
    private readonly stream: Duplex,
    private readonly tlsSocket: TLSSocket,
    private readonly parts: MqttSessionParts,
  ) {
    const parser = createParser({ protocolVersion: 4 });
    // Bytes received since the last whole packet: a packet that grows past the limit ends the connection.
    let partialBytes = 0;
    parser.on("packet", (packet: Packet) => {
      partialBytes = 0;
      this.guard(() => this.onPacket(packet));
    });
    parser.on("error", () => this.close());
    stream.on("data", (chunk: Buffer) => {
      partialBytes += chunk.length;
      if (partialBytes > MAX_PACKET_BYTES) return void this.close();
      parser.parse(chunk);
    });
    stream.on("error", () => this.close());
    stream.on("end", () => this.close());
    stream.on("close", () => this.close());
    tlsSocket.on("error", () => this.close());
    tlsSocket.on("close", () => this.close());
    tlsSocket.setTimeout(CONNECT_TIMEOUT_MS, () => this.close());
  }

  get hubHostName(): string | undefined {
    return this.state.phase === "connected" ? this.state.hubHostName : undefined;
  }

  get deviceId(): string | undefined {
    return this.state.phase === "connected" ? this.state.deviceId : undefined;
  }

  get isOpen(): boolean {
    return this.state.phase === "connected";
  }

  listensForMethods(): boolean {
    return this.isOpen && this.subscriptions.has("methods");
  }

  /** Ends the connection (device deleted, disabled, new credentials, token expiry, a newer connection). */
  close(): void {
    const state = this.state;
    if (state.phase === "closed") return;
    this.state = { phase: "closed" };
    if (state.phase === "connected") {
      if (state.expiryTimer) clearTimeout(state.expiryTimer);
      // Messages out and not acknowledged go back to the queue (the lock is lost with the connection).
      for (const lease of this.c2dInFlight.values()) lease.release();
      this.c2dInFlight.clear();
      this.parts.closed(this, state.hubHostName, state.deviceId);
    }
    this.stream.destroy();
    this.tlsSocket.destroy();
  }

  /** Fault injection: the socket goes away without a DISCONNECT. */
  drop(): void {
    this.tlsSocket.destroy();
    this.close();
  }

  pushDesired(change: DesiredChange): void {
    const qos = this.subscriptions.get("desired");
    if (!this.isOpen || qos === undefined) return;
    this.publish(desiredPatchTopic(change.version), { ...change.patch, $version: change.version }, qos);
  }

  sendMethodRequest(requestId: string, methodName: string, payload: Buffer): void {
    const qos = this.subscriptions.get("methods");
    if (!this.isOpen || qos === undefined) return;
    this.publish(methodRequestTopic(methodName, requestId), payload, qos);
  }

  /** Takes queued C2D messages while the device listens and the in-flight window has room. */
  pullC2d(): void {
    const state = this.state;
    const qos = this.subscriptions.get("c2d");
    if (state.phase !== "connected" || qos === undefined) return;
    while (this.c2dInFlight.size < C2D_IN_FLIGHT) {
      const lease = this.parts.c2d.take(state.hubHostName, state.deviceId);
      if (!lease) return;
      const { entry } = lease;
      const properties: [string, string][] = [
        ["$.mid", entry.messageId],
        ["$.to", `/devices/${state.deviceId}/messages/devicebound`],
        ...(entry.correlationId !== undefined
          ? ([["$.cid", entry.correlationId]] as [string, string][])
          : []),
        ...(entry.contentType !== undefined ? ([["$.ct", entry.contentType]] as [string, string][]) : []),
        ...(entry.contentEncoding !== undefined
          ? ([["$.ce", entry.contentEncoding]] as [string, string][])
          : []),
        ["$.exp", new Date(entry.expiresAtMs).toISOString()],
        ...Object.entries(entry.properties),
      ];
      const packetId = this.publish(c2dTopic(state.deviceId, properties), entry.body, qos);
      // QoS 0: nothing will acknowledge the message, so it completes once sent (docs/hub-mqtt-protocol.md §6).
      if (packetId === undefined) lease.settle("completed");
      else this.c2dInFlight.set(packetId, lease);
    }
  }

  // ------------------------------------------------------------------------------------------ packets

  /** A bug or a hostile peer ends this connection, never the process. */
  private guard(handler: () => void): void {
    try {
      handler();
    } catch (error) {
      this.parts.log(`MQTT connection closed after an internal error: ${(error as Error).name}`);
      this.close();
    }
  }

  private onPacket(packet: Packet): void {
    const state = this.state;
    if (state.phase === "closed") return;
    if (state.phase === "awaiting-connect") {
      // Anything before CONNECT is a protocol violation (MQTT 3.1.1 §3.1).
      if (packet.cmd !== "connect") return this.close();
      return this.onConnect(packet);
    }
    switch (packet.cmd) {
      case "publish":
        return this.onPublish(packet, state.hubHostName, state.deviceId, state.method);
      case "puback":
        return this.onPuback(packet.messageId);
      case "subscribe":
        return this.onSubscribe(packet.messageId, packet.subscriptions, state.hubHostName, state.deviceId);
      case "unsubscribe":
        return this.onUnsubscribe(
          packet.messageId,
          packet.unsubscriptions,
          state.hubHostName,
          state.deviceId,
        );
      case "pingreq":
        return this.send({ cmd: "pingresp" });
      case "disconnect":
        return this.close();
      default:
        // A second CONNECT, QoS 2 flows and server-only packets end the connection.
        return this.close();
    }
  }

  private refuse(returnCode: number, why: string): void {
    this.parts.log(`MQTT connection refused (CONNACK ${returnCode}): ${why}`);
    this.send({ cmd: "connack", returnCode, sessionPresent: false });
    this.stream.end();
    this.state = { phase: "closed" };
    setTimeout(() => this.tlsSocket.destroy(), 1000).unref();
  }

  private onConnect(packet: IConnectPacket): void {
    if (packet.protocolVersion !== 4) {
      return this.refuse(ConnackCode.unacceptableProtocol, "only MQTT 3.1.1 is supported");
    }
    const username = USERNAME.exec(packet.username ?? "");
    const host = username?.[1];
    let deviceId: string | undefined;
    try {
      deviceId = username?.[2] !== undefined ? decodeURIComponent(username[2]) : undefined;
    } catch {
      deviceId = undefined;
    }
    const hubHostName = host !== undefined ? servedHostName(host, this.parts.credentials) : undefined;
    if (!deviceId || !hubHostName) {
      return this.refuse(ConnackCode.badUsernameOrPassword, "the user name is not {hub}/{deviceId}/...");
    }
    if (packet.clientId !== deviceId) {
      return this.refuse(
        ConnackCode.identifierRejected,
        "the client id is not the device id of the user name",
      );
    }
    const check = packet.password
      ? checkDeviceSasToken(packet.password.toString("utf8"), deviceId, this.parts.credentials)
      : checkDeviceCertificate(
          this.parts.peer(this.tlsSocket),
          deviceId,
          hubHostName,
          this.parts.credentials,
        );
    if (!check.ok) return this.refuse(ConnackCode.notAuthorized, check.reason);
    const keepAlive = Math.min(packet.keepalive || MAX_KEEP_ALIVE_S, MAX_KEEP_ALIVE_S);
    this.tlsSocket.setTimeout(keepAlive * 1500, () => this.close());
    const connected: SessionState = {
      phase: "connected",
      hubHostName: check.hubHostName,
      deviceId,
      method: check.method,
    };
    if (check.expiresAtMs !== undefined) {
      // IoT Hub closes an MQTT connection whose SAS token expires; the SDK reconnects with a new one.
      const delay = Math.min(Math.max(0, check.expiresAtMs - Date.now()), 2 ** 31 - 1);
      connected.expiryTimer = setTimeout(() => this.close(), delay);
      connected.expiryTimer.unref();
    }
    this.state = connected;
    this.send({ cmd: "connack", returnCode: ConnackCode.accepted, sessionPresent: false });
    this.parts.opened(this);
  }

  private onSubscribe(
    messageId: number | undefined,
    requested: { topic: string; qos: number }[],
    hubHostName: string,
    deviceId: string,
  ): void {
    const granted: number[] = [];
    const added: DeviceSubscription[] = [];
    for (const { topic, qos } of requested) {
      const subscription = parseSubscription(topic, deviceId);
      if (!subscription) {
        granted.push(SUBACK_FAILURE);
        continue;
      }
      // IoT Hub grants at most QoS 1.
      const grantedQos: 0 | 1 = qos >= 1 ? 1 : 0;
      this.subscriptions.set(subscription, grantedQos);
      granted.push(grantedQos);
      added.push(subscription);
    }
    this.send({ cmd: "suback", messageId: messageId ?? 0, granted });
    for (const subscription of added) this.subscribed(subscription, hubHostName, deviceId, true);
  }

  private onUnsubscribe(
    messageId: number | undefined,
    filters: string[],
    hubHostName: string,
    deviceId: string,
  ): void {
    const removed: DeviceSubscription[] = [];
    for (const filter of filters) {
      const subscription = parseSubscription(filter, deviceId);
      if (subscription && this.subscriptions.delete(subscription)) removed.push(subscription);
    }
    this.send({ cmd: "unsuback", messageId: messageId ?? 0, granted: [] });
    for (const subscription of removed) this.subscribed(subscription, hubHostName, deviceId, false);
  }

  private subscribed(
    subscription: DeviceSubscription,
    hubHostName: string,
    deviceId: string,
    subscribed: boolean,
  ): void {
    if (subscription === "desired") {
      const event: TwinSubscriptionEvent = { hubHostName, deviceId, subscribed };
      emitSafely(this.parts.events, "twinSubscription", event);
    } else if (subscription === "methods" && subscribed) {
      this.parts.methods.linkAttached(hubHostName, deviceId);
    } else if (subscription === "c2d" && subscribed) {
      setImmediate(() => this.pullC2d());
    }
  }

  private onPuback(messageId: number | undefined): void {
    const lease = messageId !== undefined ? this.c2dInFlight.get(messageId) : undefined;
    if (!lease || messageId === undefined) return;
    this.c2dInFlight.delete(messageId);
    lease.settle("completed");
    this.pullC2d();
  }

  private onPublish(
    packet: IPublishPacket,
    hubHostName: string,
    deviceId: string,
    authMethod: "sas" | "x509",
  ): void {
    // IoT Hub supports QoS 0 and 1 only; QoS 2 ends the connection.
    if (packet.qos === 2) return this.close();
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const topic = parseDevicePublish(packet.topic);
    const ack = (): void => {
      if (packet.qos === 1) this.send({ cmd: "puback", messageId: packet.messageId ?? 0 });
    };
    switch (topic.kind) {
      case "telemetry": {
        // Publishing for another device is not allowed: IoT Hub closes the connection.
        if (topic.deviceId !== deviceId) return this.close();
        const result = takeTelemetry(
          telemetryMessage(topic.properties, payload),
          { hubHostName, deviceId, authMethod },
          this.parts,
        );
        // MQTT 3.1.1 has no negative acknowledgement: a refused message ends the connection.
        if (!result.accepted) {
          this.parts.log(`MQTT telemetry refused: ${result.description}`);
          return this.close();
        }
        const delay = this.parts.faults.ackDelayMs;
        if (delay > 0) setTimeout(() => this.isOpen && ack(), delay).unref();
        else ack();
        return;
      }
      case "twin-get":
        ack();
        return this.twinResponse(
          topic.rid,
          answerTwinGet(this.parts.store, this.parts.faults, hubHostName, deviceId),
        );
      case "twin-reported":
        ack();
        return this.twinResponse(
          topic.rid,
          answerReportedPatch(this.parts.store, hubHostName, deviceId, payload),
        );
      case "method-response":
        ack();
        return this.parts.methods.respond(topic.rid, topic.status, payload, { hubHostName, deviceId });
      default:
        this.parts.log(`MQTT publish to an unsupported topic closed the connection`);
        return this.close();
    }
  }

  private twinResponse(rid: string, { status, body, version }: TwinAnswer): void {
    const qos = this.subscriptions.get("twin-responses");
    // IoT Hub answers on the response topic only when the device subscribed to it.
    if (qos === undefined) return;
    this.publish(twinResponseTopic(status, rid, version), body === undefined ? Buffer.alloc(0) : body, qos);
  }

  /** Publishes to the device; returns the packet id of a QoS 1 publish. */
  private publish(topic: string, body: unknown, qos: 0 | 1): number | undefined {
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    if (qos === 0) {
      this.send({ cmd: "publish", topic, payload, qos: 0, retain: false, dup: false });
      return undefined;
    }
    const messageId = this.nextPacketId;
    this.nextPacketId = (this.nextPacketId % 0xffff) + 1;
    this.send({ cmd: "publish", topic, payload, qos: 1, messageId, retain: false, dup: false });
    return messageId;
  }

  private send(packet: Packet): void {
    if (!this.stream.destroyed && this.stream.writable) this.stream.write(generate(packet));
  }
}
