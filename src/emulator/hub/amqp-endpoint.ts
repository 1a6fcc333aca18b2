// The device-facing AMQP endpoint of the emulated IoT Hub: TLS without SASL, CBS put-token, X.509 client
// certificates, and the telemetry, twin, C2D and direct-method links (hub-amqp-protocol.md §1-§5, §8).
import { createHash, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { AddressInfo } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import {
  create_container,
  string_to_uuid,
  types as amqpTypes,
  type AmqpError,
  type Connection,
  type Container,
  type Delivery,
  type EventContext,
  type Message,
  type Receiver,
  type Sender,
  type Source,
  type TerminusOptions,
} from "rhea";
import { bodyBytes, dataSection, jsonDataSection, messageIdText } from "./amqp-body.js";
import { C2dLimits, C2dQueue, type C2dEntry } from "./c2d-queue.js";
import { checkPutToken, type PutTokenResult } from "./cbs-token-check.js";
import { deviceKey, type DesiredChange, type DeviceStore } from "./device-store.js";
import { AzureErrorCode, HubServiceError, type AzureErrorBody, type AzureErrorName } from "./errors.js";
import { directionAllowed, parseLinkAddress, type DeviceLinkKind } from "./link-address.js";
import { MAX_TELEMETRY_BYTES, telemetryRecord, telemetrySize, type TelemetryLog } from "./telemetry.js";
import { TwinRuleViolation } from "./twin-rules.js";
import type {
  C2dFeedbackEvent,
  CloudToDeviceMessage,
  ConnectionEvent,
  FaultLink,
  HubDeviceRecord,
  MethodRequest,
  TwinSubscriptionEvent,
} from "./types.js";

/** OPEN values a Microsoft AMQP stack advertises (hub-amqp-protocol.md §1.4): heartbeat and 64 KB frames. */
const IDLE_TIME_OUT_MS = 240_000;
const MAX_FRAME_SIZE = 65_536;
/** Link credit granted to device sender links (rhea's default, as in the verified probe). */
const CREDIT_WINDOW = 1000;
/** Longest delay setTimeout accepts; later deadlines are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Direct method limits (iot-hub-devguide-direct-methods.md). */
const MethodLimits = {
  defaultResponseTimeoutS: 30,
  minResponseTimeoutS: 5,
  maxResponseTimeoutS: 300,
  maxConnectTimeoutS: 300,
  maxPayloadBytes: 128 * 1024,
} as const;

/** AMQP error conditions IoT Hub uses towards devices (hub-amqp-protocol.md §3.3, §6.1). */
const Condition = {
  unauthorized: "amqp:unauthorized-access",
  notFound: "amqp:not-found",
  notAllowed: "amqp:not-allowed",
  internal: "amqp:internal-error",
  messageSizeExceeded: "amqp:link:message-size-exceeded",
  resourceLimitExceeded: "amqp:resource-limit-exceeded",
} as const;

type LinkRole =
  | "cbs-request"
  | "cbs-reply"
  | "telemetry"
  | "twin-request"
  | "twin-reply"
  | "c2d"
  | "method-response"
  | "method-request";

interface LinkState {
  link: Sender | Receiver;
  role: LinkRole;
  hubHostName?: string;
  deviceId?: string;
  /** The SDK pairs its twin and method links by this property (hub-amqp-protocol.md §1.6). */
  channelCorrelationId?: unknown;
  desiredSubscribed: boolean;
  /** Outbound messages waiting for link credit (obligation 5). */
  outbox: { message: Message; tag?: Buffer }[];
  /** C2D deliveries sent on this link and not yet settled by the device. */
  c2dInFlight: Set<Delivery>;
}

interface Authorization {
  hubHostName: string;
  deviceId: string;
  method: "sas" | "x509";
  expiresAtMs?: number;
  expiryTimer?: NodeJS.Timeout;
}

interface PeerCertificateInfo {
  sha1: string;
  sha256: string;
  commonName?: string;
  /** The chain verified against the configured client CAs. */
  chainTrusted: boolean;
}

interface ConnectionState {
  connection: Connection;
  /** deviceId -> authorization (several devices may share one connection, §2.3). */
  authorizations: Map<string, Authorization>;
  links: Map<Sender | Receiver, LinkState>;
  pendingCbsReplies: Message[];
  peer?: PeerCertificateInfo;
  /** The host name the client put into OPEN (the TCP host, without port). */
  openHostName?: string;
}

interface PendingMethod {
  hubHostName: string;
  deviceId: string;
  resolve(result: { status: number; payload: unknown }): void;
  reject(error: HubServiceError): void;
  timer: NodeJS.Timeout;
}

interface C2dDelivery {
  hubHostName: string;
  deviceId: string;
  entry: C2dEntry;
  linkState: LinkState;
}

export interface EndpointOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string; clientCa?: string[] };
  hostNames: string[];
}

/** The service-facing event emitter and the fault counters are owned by the endpoint. */
export class AmqpEndpoint {
  private readonly container: Container;
  private server: TlsServer | undefined;
  private readonly connections = new Map<Connection, ConnectionState>();
  private readonly c2dQueues = new Map<string, C2dQueue>();
  private readonly c2dDeliveries = new WeakMap<Delivery, C2dDelivery>();
  private readonly pendingMethods = new Map<string, PendingMethod>();
  /** Wakes invokeMethod calls that wait for a device's method link (connectTimeoutInSeconds). */
  private readonly methodLinkAttached = new EventEmitter();
  private readonly timers = new Set<NodeJS.Timeout>();
  private c2dSequence = 0;
  private tokensToReject = 0;
  private telemetryToThrottle = 0;
  private ackDelayMs = 0;
  private closing = false;
  boundPort = 0;

  constructor(
    private readonly options: EndpointOptions,
    private readonly store: DeviceStore,
    private readonly telemetry: TelemetryLog,
    private readonly events: EventEmitter,
  ) {
    this.methodLinkAttached.setMaxListeners(0);
    this.container = create_container({ id: `provisio-iothub-${randomUUID()}` });
    this.wireContainer();
  }

  async listen(): Promise<void> {
    const { host, port, tls } = this.options;
    const listenOptions = {
      transport: "tls",
      host,
      port,
      key: tls.key,
      cert: tls.cert,
      ...(tls.clientCa && tls.clientCa.length > 0 ? { ca: tls.clientCa } : {}),
      // X.509 devices present a client certificate; SAS devices present none. The chain and thumbprint are
      // checked per device at link attach, so the handshake itself accepts every client (§2.6).
      requestCert: true,
      rejectUnauthorized: false,
      autoaccept: false,
      credit_window: CREDIT_WINDOW,
      idle_time_out: IDLE_TIME_OUT_MS,
      max_frame_size: MAX_FRAME_SIZE,
      container_id: this.container.id,
    };
    // rhea's typings lack the link defaults (autoaccept, credit_window) that listen() passes on to connections.
    const server = this.container.listen(
      listenOptions as unknown as Parameters<Container["listen"]>[0],
    ) as TlsServer;
    this.server = server;
    // A failed TLS handshake only concerns that client.
    server.on("tlsClientError", () => undefined);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.once("error", onError);
      server.once("listening", () => {
        server.off("error", onError);
        server.on("error", () => undefined);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const pending of this.pendingMethods.values()) {
      clearTimeout(pending.timer);
      pending.reject(new HubServiceError(503, "ServiceUnavailable", "The hub is shutting down."));
    }
    this.pendingMethods.clear();
    this.methodLinkAttached.emit("closing");
    const server = this.server;
    for (const state of this.connections.values()) destroySocket(state.connection);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const state of [...this.connections.values()]) this.connectionEnded(state);
  }

  // ------------------------------------------------------------------------------------------ service side

  connectionCount(): number {
    return this.connections.size;
  }

  isConnected(hubHostName: string, deviceId: string): boolean {
    return this.authorizationsOf(hubHostName, deviceId).length > 0;
  }

  /** Revokes the device on every connection and detaches its links (device deleted or disabled). */
  disconnectDevice(hubHostName: string, deviceId: string, description: string): void {
    for (const [state, authorization] of this.authorizationsOf(hubHostName, deviceId)) {
      this.revoke(state, authorization, { condition: Condition.unauthorized, description });
    }
  }

  pushDesired(hubHostName: string, deviceId: string, change: DesiredChange): void {
    const body = { ...change.patch, $version: change.version };
    for (const [state] of this.authorizationsOf(hubHostName, deviceId)) {
      for (const link of state.links.values()) {
        if (link.role !== "twin-reply" || link.deviceId !== deviceId || !link.desiredSubscribed) continue;
        // Notifications carry no correlation id; the SDK tells them from responses that way (§4.4).
        this.send(
          link,
          amqpMessage({
            message_annotations: { version: amqpTypes.wrap_long(change.version) },
            body: jsonDataSection(body),
          }),
        );
      }
    }
  }

  sendCloudToDevice(hubHostName: string, deviceId: string, message: CloudToDeviceMessage): void {
    const device = this.requireDevice(hubHostName, deviceId);
    const body = typeof message.body === "string" ? Buffer.from(message.body) : message.body;
    if (!Buffer.isBuffer(body))
      throw new HubServiceError(400, "ArgumentInvalid", "The message body must be bytes or text.");
    if (body.length > C2dLimits.maxMessageBytes) {
      throw new HubServiceError(
        413,
        "MessageTooLarge",
        `Message size exceeds ${C2dLimits.maxMessageBytes} bytes.`,
      );
    }
    let expiresAtMs = Date.now() + C2dLimits.defaultTtlMs;
    if (message.expiryTimeUtc !== undefined) {
      expiresAtMs = Date.parse(message.expiryTimeUtc);
      if (Number.isNaN(expiresAtMs))
        throw new HubServiceError(400, "ArgumentInvalid", "expiryTimeUtc is not a date.");
    }
    const key = deviceKey(device.hubHostName, deviceId);
    let queue = this.c2dQueues.get(key);
    if (!queue) {
      queue = new C2dQueue();
      this.c2dQueues.set(key, queue);
    }
    if (queue.size >= C2dLimits.maxPendingPerDevice) {
      throw new HubServiceError(
        403,
        "DeviceMaximumQueueDepthExceeded",
        `Device ${deviceId} already has ${C2dLimits.maxPendingPerDevice} messages pending.`,
      );
    }
    this.c2dSequence += 1;
    queue.enqueue({
      messageId: message.messageId ?? randomUUID(),
      ...(message.correlationId !== undefined ? { correlationId: message.correlationId } : {}),
      body,
      properties: { ...(message.properties ?? {}) },
      expiresAtMs,
      deliveryCount: 0,
      sequenceNumber: this.c2dSequence,
    });
    this.flushC2d(device.hubHostName, deviceId);
  }

  async invokeMethod(
    hubHostName: string,
    deviceId: string,
    request: MethodRequest,
  ): Promise<{ status: number; payload: unknown }> {
    const device = this.requireDevice(hubHostName, deviceId);
    const responseTimeoutS = request.responseTimeoutInSeconds ?? MethodLimits.defaultResponseTimeoutS;
    const connectTimeoutS = request.connectTimeoutInSeconds ?? 0;
    if (typeof request.methodName !== "string" || request.methodName.length === 0) {
      throw new HubServiceError(400, "ArgumentInvalid", "methodName is required.");
    }
    if (!(
      responseTimeoutS >= MethodLimits.minResponseTimeoutS &&
      responseTimeoutS <= MethodLimits.maxResponseTimeoutS
    )) {
      throw new HubServiceError(
        400,
        "ArgumentInvalid",
        `responseTimeoutInSeconds must be between ${MethodLimits.minResponseTimeoutS} and ${MethodLimits.maxResponseTimeoutS}.`,
      );
    }
    if (!(connectTimeoutS >= 0 && connectTimeoutS <= MethodLimits.maxConnectTimeoutS)) {
      throw new HubServiceError(400, "ArgumentInvalid", `connectTimeoutInSeconds must be between 0 and 300.`);
    }
    const payload = Buffer.from(JSON.stringify(request.payload ?? null));
    if (payload.length > MethodLimits.maxPayloadBytes) {
      throw new HubServiceError(
        413,
        "MessageTooLarge",
        `Method payload exceeds ${MethodLimits.maxPayloadBytes} bytes.`,
      );
    }
    const link =
      this.methodRequestLink(device.hubHostName, deviceId) ??
      (await this.waitForMethodLink(device, connectTimeoutS));
    if (!link) {
      throw new HubServiceError(
        404,
        "DeviceNotOnline",
        `Device ${deviceId} is not online for direct methods.`,
      );
    }
    const correlationId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingMethods.delete(correlationId);
        reject(
          new HubServiceError(
            504,
            "GatewayTimeout",
            `Timed out waiting for the response from device ${deviceId}.`,
          ),
        );
      }, responseTimeoutS * 1000);
      this.pendingMethods.set(correlationId, {
        hubHostName: device.hubHostName,
        deviceId,
        resolve,
        reject,
        timer,
      });
      // The service sends an AMQP uuid correlation id (0x98), §5.2.
      this.send(
        link,
        amqpMessage({
          correlation_id: string_to_uuid(correlationId),
          application_properties: { "IoThub-methodname": request.methodName },
          body: dataSection(payload),
        }),
      );
    });
  }

  // ------------------------------------------------------------------------------------------ faults

  dropConnection(hubHostName: string, deviceId: string): boolean {
    const states = this.authorizationsOf(hubHostName, deviceId).map(([state]) => state);
    for (const state of states) destroySocket(state.connection);
    return states.length > 0;
  }

  detachLink(hubHostName: string, deviceId: string, link: FaultLink): boolean {
    const roles: Record<FaultLink, LinkRole[]> = {
      telemetry: ["telemetry"],
      twin: ["twin-request", "twin-reply"],
      c2d: ["c2d"],
      methods: ["method-request", "method-response"],
    };
    let detached = false;
    for (const [state] of this.authorizationsOf(hubHostName, deviceId)) {
      for (const linkState of [...state.links.values()]) {
        if (linkState.deviceId !== deviceId || !roles[link].includes(linkState.role)) continue;
        // A clean detach of a receiver link would silently stop delivery in the SDK (§6.2): always an error.
        closeLink(linkState.link, {
          condition: Condition.internal,
          description: "Link detached by fault injection.",
        });
        detached = true;
      }
    }
    return detached;
  }

  rejectNextTokens(count: number): void {
    this.tokensToReject = Math.max(0, Math.floor(count));
  }

  throttleNext(count: number): void {
    this.telemetryToThrottle = Math.max(0, Math.floor(count));
  }

  delayAcks(ms: number): void {
    this.ackDelayMs = Math.max(0, ms);
  }

  // ------------------------------------------------------------------------------------------ rhea wiring

  private wireContainer(): void {
    const c = this.container;
    c.on("connection_open", (context: EventContext) =>
      this.guard(context, () => this.onConnectionOpen(context)),
    );
    c.on("receiver_open", (context: EventContext) =>
      this.guard(context, () => this.onDeviceSenderAttached(context)),
    );
    c.on("sender_open", (context: EventContext) =>
      this.guard(context, () => this.onDeviceReceiverAttached(context)),
    );
    c.on("message", (context: EventContext) => this.guard(context, () => this.onMessage(context)));
    c.on("sendable", (context: EventContext) => this.guard(context, () => this.onSendable(context)));
    c.on("accepted", (context: EventContext) =>
      this.guard(context, () => this.onC2dOutcome(context, "completed")),
    );
    c.on("rejected", (context: EventContext) =>
      this.guard(context, () => this.onC2dOutcome(context, "rejected")),
    );
    c.on("released", (context: EventContext) =>
      this.guard(context, () => this.onC2dOutcome(context, "abandoned")),
    );
    c.on("modified", (context: EventContext) =>
      this.guard(context, () => this.onC2dOutcome(context, "abandoned")),
    );
    const linkClosed = (context: EventContext): void => this.guard(context, () => this.onLinkClosed(context));
    c.on("sender_close", linkClosed);
    c.on("receiver_close", linkClosed);
    c.on("session_close", (context: EventContext) =>
      this.guard(context, () => this.onSessionClosed(context)),
    );
    const connectionEnded = (context: EventContext): void =>
      this.guard(context, () => {
        const state = this.connections.get(context.connection);
        if (state) this.connectionEnded(state);
      });
    c.on("connection_close", connectionEnded);
    c.on("disconnected", connectionEnded);
    // Errors reported by peers or sockets: rhea closes what is affected; an unhandled 'error' would kill the process.
    for (const event of [
      "error",
      "protocol_error",
      "connection_error",
      "session_error",
      "sender_error",
      "receiver_error",
    ]) {
      c.on(event, () => undefined);
    }
  }

  /** Runs a handler so that a bug or a hostile peer ends that connection, never the process. */
  private guard(context: EventContext, handler: () => void): void {
    try {
      handler();
    } catch {
      try {
        context.connection.close({
          condition: Condition.internal,
          description: "The hub could not process the request.",
        });
      } catch {
        destroySocket(context.connection);
      }
    }
  }

  private onConnectionOpen(context: EventContext): void {
    const connection = context.connection;
    const state: ConnectionState = {
      connection,
      authorizations: new Map(),
      links: new Map(),
      pendingCbsReplies: [],
    };
    const openHostName = remoteOpen(connection).hostname;
    if (typeof openHostName === "string") state.openHostName = openHostName;
    const socket = connection.get_tls_socket() as TLSSocket | undefined;
    const certificate = socket?.getPeerCertificate();
    if (certificate?.raw) {
      const commonName = certificate.subject?.CN;
      state.peer = {
        sha1: createHash("sha1").update(certificate.raw).digest("hex").toUpperCase(),
        sha256: createHash("sha256").update(certificate.raw).digest("hex").toUpperCase(),
        ...(typeof commonName === "string" ? { commonName } : {}),
        chainTrusted: socket?.authorized === true && (this.options.tls.clientCa?.length ?? 0) > 0,
      };
    }
    this.connections.set(connection, state);
    // rhea only notices a socket that ends or errors; one we destroy ourselves (dropConnection) just closes.
    (socket as EventEmitter | undefined)?.once("close", () =>
      this.guard(context, () => this.connectionEnded(state)),
    );
  }

  private onSessionClosed(context: EventContext): void {
    // The SDK uses one session per connection; when it ends, so do its links.
    const state = this.connections.get(context.connection);
    if (!state) return;
    for (const link of [...state.links.keys()]) {
      if ((link as unknown as { session?: unknown }).session === context.session)
        this.forgetLink(state, link);
    }
  }

  /** The device attached a sender link: we receive (CBS requests, telemetry, twin requests, method responses). */
  private onDeviceSenderAttached(context: EventContext): void {
    const link = context.receiver;
    if (!link) return;
    const attach = remoteAttach(link);
    link.set_target({ address: attach.target?.address } as TerminusOptions);
    link.set_source((attach.source ?? {}) as Source);
    this.attach(context.connection, link, attach.target?.address, true);
  }

  /** The device attached a receiver link: we send (CBS replies, twin replies, C2D, method requests). */
  private onDeviceReceiverAttached(context: EventContext): void {
    const link = context.sender;
    if (!link) return;
    const attach = remoteAttach(link);
    link.set_source({ address: attach.source?.address } as Source);
    link.set_target((attach.target ?? {}) as TerminusOptions);
    // The twin receiver asks for settled transfers (snd-settle-mode 1); echo it (§1.6, pitfall 9).
    if (attach.snd_settle_mode !== undefined) localAttach(link).snd_settle_mode = attach.snd_settle_mode;
    this.attach(context.connection, link, attach.source?.address, false);
  }

  private attach(
    connection: Connection,
    link: Sender | Receiver,
    address: unknown,
    deviceSends: boolean,
  ): void {
    const state = this.connections.get(connection);
    if (!state) {
      closeLink(link, { condition: Condition.internal, description: "Connection not ready." });
      return;
    }
    const parsed = parseLinkAddress(address);
    if (!parsed) {
      closeLink(link, {
        condition: Condition.notFound,
        description: `The link address ${String(address)} is not supported.`,
      });
      return;
    }
    const channelCorrelationId = remoteAttach(link).properties?.["com.microsoft:channel-correlation-id"];
    if (parsed.kind === "cbs") {
      const linkState = newLinkState(link, deviceSends ? "cbs-request" : "cbs-reply", channelCorrelationId);
      state.links.set(link, linkState);
      if (!deviceSends) for (const reply of state.pendingCbsReplies.splice(0)) this.send(linkState, reply);
      return;
    }
    if (!directionAllowed(parsed.kind, deviceSends)) {
      closeLink(link, {
        condition: Condition.notAllowed,
        description: `Wrong link direction for ${String(address)}.`,
      });
      return;
    }
    const authorization = this.authorizeLink(state, parsed.deviceId);
    if (!authorization) {
      closeLink(link, {
        condition: Condition.unauthorized,
        description: `The connection is not authorized for device ${parsed.deviceId}.`,
      });
      return;
    }
    const linkState = newLinkState(link, roleFor(parsed.kind, deviceSends), channelCorrelationId);
    linkState.hubHostName = authorization.hubHostName;
    linkState.deviceId = authorization.deviceId;
    state.links.set(link, linkState);
    if (linkState.role === "c2d")
      setImmediate(() => this.flushC2d(authorization.hubHostName, authorization.deviceId));
    if (linkState.role === "method-request")
      this.methodLinkAttached.emit(deviceKey(authorization.hubHostName, authorization.deviceId));
  }

  /** The device's authorization on this connection: a live SAS token, or a matching X.509 client certificate. */
  private authorizeLink(state: ConnectionState, deviceId: string): Authorization | undefined {
    const existing = state.authorizations.get(deviceId);
    if (existing) {
      if (existing.method === "x509" || (existing.expiresAtMs ?? 0) > Date.now()) return existing;
      return undefined;
    }
    if (!state.peer) return undefined;
    const device = this.x509Device(state, deviceId);
    if (!device) return undefined;
    const authorization: Authorization = { hubHostName: device.hubHostName, deviceId, method: "x509" };
    this.grant(state, authorization);
    return authorization;
  }

  /** The registered device a client certificate stands for (thumbprint, or CA chain with CN == deviceId). */
  private x509Device(state: ConnectionState, deviceId: string): HubDeviceRecord | undefined {
    const peer = state.peer;
    if (!peer) return undefined;
    const candidates = this.store
      .findById(deviceId)
      .filter((device) =>
        this.options.hostNames.some((name) => name.toLowerCase() === device.hubHostName.toLowerCase()),
      )
      .filter((device) => device.status === "enabled")
      .filter((device) => {
        const auth = device.authentication;
        if (auth.type === "selfSigned") {
          const allowed = [auth.x509Thumbprint.primaryThumbprint, auth.x509Thumbprint.secondaryThumbprint];
          return allowed.includes(peer.sha1) || allowed.includes(peer.sha256);
        }
        if (auth.type === "certificateAuthority") return peer.chainTrusted && peer.commonName === deviceId;
        return false;
      });
    // Several hubs on one listener: prefer the one the client named in OPEN.
    const opened = state.openHostName?.toLowerCase();
    return candidates.find((device) => device.hubHostName.toLowerCase() === opened) ?? candidates[0];
  }

  private grant(state: ConnectionState, authorization: Authorization): void {
    const wasConnected = this.isConnected(authorization.hubHostName, authorization.deviceId);
    const previous = state.authorizations.get(authorization.deviceId);
    if (previous?.expiryTimer) this.clearTimer(previous.expiryTimer);
    state.authorizations.set(authorization.deviceId, authorization);
    if (authorization.expiresAtMs !== undefined) this.scheduleExpiry(state, authorization);
    if (!wasConnected) this.emitConnection(authorization, true);
  }

  private revoke(state: ConnectionState, authorization: Authorization, error: AmqpError): void {
    if (state.authorizations.get(authorization.deviceId) !== authorization) return;
    state.authorizations.delete(authorization.deviceId);
    if (authorization.expiryTimer) this.clearTimer(authorization.expiryTimer);
    for (const linkState of [...state.links.values()]) {
      if (linkState.deviceId === authorization.deviceId) closeLink(linkState.link, error);
    }
    // A connection left with no authorized device loses its CBS links too, so that the SDK notices at once
    // (a link detached with an error runs the connection down, §6.2) instead of on its next operation.
    if (state.authorizations.size === 0) {
      for (const linkState of [...state.links.values()]) {
        if (linkState.role === "cbs-request" || linkState.role === "cbs-reply")
          closeLink(linkState.link, error);
      }
    }
    if (!this.isConnected(authorization.hubHostName, authorization.deviceId))
      this.emitConnection(authorization, false);
  }

  /** Token expiry detaches the device's links with amqp:unauthorized-access (§2.5, detach-links action). */
  private scheduleExpiry(state: ConnectionState, authorization: Authorization): void {
    const expiresAtMs = authorization.expiresAtMs;
    if (expiresAtMs === undefined) return;
    const arm = (): void => {
      const delay = Math.min(Math.max(0, expiresAtMs - Date.now()), MAX_TIMER_MS);
      authorization.expiryTimer = this.setTimer(() => {
        if (Date.now() < expiresAtMs) {
          arm();
          return;
        }
        this.revoke(state, authorization, {
          condition: Condition.unauthorized,
          description: "The SAS token has expired.",
        });
      }, delay);
    };
    arm();
  }

  private emitConnection(authorization: Authorization, connected: boolean): void {
    const event: ConnectionEvent = {
      hubHostName: authorization.hubHostName,
      deviceId: authorization.deviceId,
      connected,
    };
    this.emitSafely("connection", event);
  }

  private onMessage(context: EventContext): void {
    const state = this.connections.get(context.connection);
    const receiver = context.receiver;
    const delivery = context.delivery;
    const message = context.message;
    const linkState = receiver ? state?.links.get(receiver) : undefined;
    if (!state || !linkState || !delivery || !message) {
      if (delivery)
        settle(delivery, "reject", { condition: Condition.notAllowed, description: "Unexpected message." });
      return;
    }
    switch (linkState.role) {
      case "cbs-request":
        settle(delivery, "accept");
        this.onPutToken(state, message);
        return;
      case "telemetry":
        this.onTelemetry(state, linkState, delivery, message);
        return;
      case "twin-request":
        // Twin requests arrive pre-settled; settle locally or the session window fills up (obligation 6).
        settle(delivery, "accept");
        this.onTwinRequest(state, linkState, message);
        return;
      case "method-response":
        settle(delivery, "accept");
        this.onMethodResponse(message);
        return;
      default:
        settle(delivery, "reject", { condition: Condition.notAllowed, description: "Unexpected message." });
    }
  }

  // ------------------------------------------------------------------------------------------ CBS

  private onPutToken(state: ConnectionState, message: Message): void {
    const properties = (message.application_properties ?? {}) as Record<string, unknown>;
    let result: PutTokenResult;
    if (this.tokensToReject > 0) {
      this.tokensToReject -= 1;
      result = { status: 401, description: "Unauthorized (fault injection)." };
    } else {
      const token: unknown = message.body;
      result = checkPutToken(
        {
          operation: properties.operation,
          type: properties.type,
          name: properties.name,
          token: typeof token === "string" ? token : Buffer.isBuffer(token) ? token.toString("utf8") : token,
        },
        {
          hostNames: this.options.hostNames,
          port: this.boundPort,
          findDevice: (hubHostName, deviceId) => this.store.get(hubHostName, deviceId),
          nowMs: Date.now(),
        },
      );
    }
    if (result.status === 200) {
      this.grant(state, {
        hubHostName: result.hubHostName,
        deviceId: result.deviceId,
        method: "sas",
        expiresAtMs: result.expiresAtMs,
      });
    }
    // correlation-id must be the request's message-id as sent (a string for the Node SDK), status an AMQP int (§2.2).
    const reply = amqpMessage({
      ...(typeof message.reply_to === "string" ? { to: message.reply_to } : {}),
      correlation_id: message.message_id,
      application_properties: {
        "status-code": amqpTypes.wrap_int(result.status),
        "status-description": result.description,
      },
    });
    const replyLink = [...state.links.values()].find(
      (link) => link.role === "cbs-reply" && link.link.is_open(),
    );
    if (replyLink) this.send(replyLink, reply);
    else state.pendingCbsReplies.push(reply);
  }

  // ------------------------------------------------------------------------------------------ telemetry

  private onTelemetry(
    state: ConnectionState,
    linkState: LinkState,
    delivery: Delivery,
    message: Message,
  ): void {
    const { hubHostName, deviceId } = linkState;
    const authorization = deviceId !== undefined ? state.authorizations.get(deviceId) : undefined;
    if (!hubHostName || !deviceId || !authorization) {
      settle(delivery, "reject", {
        condition: Condition.unauthorized,
        description: "The device is not authorized.",
      });
      return;
    }
    const size = telemetrySize(message);
    if (size > MAX_TELEMETRY_BYTES) {
      settle(delivery, "reject", {
        condition: Condition.messageSizeExceeded,
        description: `Message size ${size} bytes exceeds the limit of ${MAX_TELEMETRY_BYTES} bytes.`,
      });
      return;
    }
    if (this.telemetryToThrottle > 0) {
      this.telemetryToThrottle -= 1;
      settle(delivery, "reject", {
        condition: Condition.resourceLimitExceeded,
        description: "Message rejected: IoT hub quota exceeded (fault injection).",
      });
      return;
    }
    const record = telemetryRecord(message, {
      hubHostName,
      deviceId,
      authMethod: authorization.method,
      generationId: this.store.generationId(hubHostName, deviceId) ?? "0",
      enqueuedAt: new Date(),
    });
    this.telemetry.add(record);
    if (this.ackDelayMs > 0) this.setTimer(() => settle(delivery, "accept"), this.ackDelayMs);
    else settle(delivery, "accept");
    this.emitSafely("telemetry", record);
  }

  // ------------------------------------------------------------------------------------------ twin

  private onTwinRequest(state: ConnectionState, linkState: LinkState, message: Message): void {
    const { hubHostName, deviceId } = linkState;
    if (!hubHostName || !deviceId) return;
    const replyLink = this.twinReplyLink(state, linkState);
    const correlationId = message.correlation_id;
    const respond = (status: number, body?: unknown, version?: number): void => {
      if (!replyLink || correlationId === undefined) return;
      const annotations: Record<string, unknown> = { status: amqpTypes.wrap_int(status) };
      if (version !== undefined) annotations.version = amqpTypes.wrap_long(version);
      this.send(
        replyLink,
        amqpMessage({
          correlation_id: correlationId,
          message_annotations: annotations,
          ...(body !== undefined ? { body: jsonDataSection(body) } : {}),
        }),
      );
    };
    const annotations = (message.message_annotations ?? {}) as Record<string, unknown>;
    const operation = annotations.operation;
    const resource = annotations.resource;
    if (!this.store.get(hubHostName, deviceId)) {
      respond(404, azureError("DeviceNotFound", `Device ${deviceId} not found.`));
      return;
    }
    if (operation === "GET" && resource === undefined) {
      respond(200, this.store.deviceTwinView(hubHostName, deviceId));
      return;
    }
    if (operation === "PATCH" && resource === "/properties/reported") {
      let patch: unknown;
      try {
        patch = JSON.parse(bodyBytes(message.body).toString("utf8")) as unknown;
      } catch {
        respond(400, azureError("ArgumentInvalid", "The reported properties patch is not valid JSON."));
        return;
      }
      try {
        const version = this.store.patchReported(hubHostName, deviceId, patch);
        respond(204, undefined, version);
      } catch (error) {
        if (!(error instanceof TwinRuleViolation)) throw error;
        respond(400, azureError("ArgumentInvalid", error.message));
      }
      return;
    }
    if (
      (operation === "PUT" || operation === "DELETE") &&
      resource === "/notifications/twin/properties/desired"
    ) {
      if (replyLink) replyLink.desiredSubscribed = operation === "PUT";
      respond(200);
      const event: TwinSubscriptionEvent = { hubHostName, deviceId, subscribed: operation === "PUT" };
      this.emitSafely("twinSubscription", event);
      return;
    }
    respond(
      400,
      azureError(
        "ArgumentInvalid",
        `Unsupported twin operation ${typeof operation === "string" ? operation : "?"} ${typeof resource === "string" ? resource : ""}.`,
      ),
    );
  }

  /** The twin receiver of the same device on this connection, preferring the same channel-correlation-id (pitfall 8). */
  private twinReplyLink(state: ConnectionState, request: LinkState): LinkState | undefined {
    let fallback: LinkState | undefined;
    for (const link of state.links.values()) {
      if (link.role !== "twin-reply" || link.deviceId !== request.deviceId || !link.link.is_open()) continue;
      if (
        request.channelCorrelationId !== undefined &&
        link.channelCorrelationId === request.channelCorrelationId
      ) {
        return link;
      }
      fallback ??= link;
    }
    return fallback;
  }

  // ------------------------------------------------------------------------------------------ methods

  private methodRequestLink(hubHostName: string, deviceId: string): LinkState | undefined {
    for (const [state] of this.authorizationsOf(hubHostName, deviceId)) {
      for (const link of state.links.values()) {
        if (link.role === "method-request" && link.deviceId === deviceId && link.link.is_open()) return link;
      }
    }
    return undefined;
  }

  private waitForMethodLink(device: HubDeviceRecord, timeoutS: number): Promise<LinkState | undefined> {
    if (timeoutS <= 0 || this.closing) return Promise.resolve(undefined);
    const key = deviceKey(device.hubHostName, device.deviceId);
    return new Promise((resolve) => {
      const finish = (): void => {
        this.methodLinkAttached.off(key, finish);
        this.methodLinkAttached.off("closing", finish);
        this.clearTimer(timer);
        resolve(this.methodRequestLink(device.hubHostName, device.deviceId));
      };
      const timer = this.setTimer(finish, timeoutS * 1000);
      this.methodLinkAttached.on(key, finish);
      this.methodLinkAttached.on("closing", finish);
    });
  }

  private onMethodResponse(message: Message): void {
    const correlationId = messageIdText(message.correlation_id);
    const pending = correlationId !== undefined ? this.pendingMethods.get(correlationId) : undefined;
    if (!correlationId || !pending) return;
    this.pendingMethods.delete(correlationId);
    clearTimeout(pending.timer);
    const statusValue = (message.application_properties as Record<string, unknown> | undefined)?.[
      "IoThub-status"
    ];
    const status = typeof statusValue === "number" ? statusValue : Number(statusValue);
    const text = bodyBytes(message.body).toString("utf8");
    let payload: unknown = null;
    if (text.length > 0) {
      try {
        payload = JSON.parse(text) as unknown;
      } catch {
        payload = text;
      }
    }
    pending.resolve({ status: Number.isFinite(status) ? status : 500, payload });
  }

  // ------------------------------------------------------------------------------------------ C2D

  private flushC2d(hubHostName: string, deviceId: string): void {
    const queue = this.c2dQueues.get(deviceKey(hubHostName, deviceId));
    if (!queue) return;
    for (const [state] of this.authorizationsOf(hubHostName, deviceId)) {
      for (const linkState of state.links.values()) {
        if (linkState.role !== "c2d" || linkState.deviceId !== deviceId) continue;
        const sender = linkState.link as Sender;
        while (sender.is_open() && sender.sendable()) {
          const entry = queue.takeNext(Date.now(), (expired) =>
            this.emitFeedback(hubHostName, deviceId, expired.messageId, "expired"),
          );
          if (!entry) return;
          // The delivery tag is the lock token, a 16-byte GUID (§5.1).
          const delivery = sender.send(
            this.c2dMessage(hubHostName, deviceId, entry),
            string_to_uuid(randomUUID()),
          );
          this.c2dDeliveries.set(delivery, { hubHostName, deviceId, entry, linkState });
          linkState.c2dInFlight.add(delivery);
        }
      }
    }
  }

  private c2dMessage(hubHostName: string, deviceId: string, entry: C2dEntry): Message {
    return amqpMessage({
      message_id: entry.messageId,
      to: `/devices/${deviceId}/messages/devicebound`,
      user_id: Buffer.from(hubHostName.split(".")[0] ?? hubHostName),
      ...(entry.correlationId !== undefined ? { correlation_id: entry.correlationId } : {}),
      absolute_expiry_time: new Date(entry.expiresAtMs),
      message_annotations: { "x-opt-sequence-number": amqpTypes.wrap_long(entry.sequenceNumber) },
      ...(Object.keys(entry.properties).length > 0
        ? { application_properties: { ...entry.properties } }
        : {}),
      body: dataSection(entry.body),
    });
  }

  private onC2dOutcome(context: EventContext, outcome: "completed" | "rejected" | "abandoned"): void {
    const delivery = context.delivery;
    const record = delivery ? this.c2dDeliveries.get(delivery) : undefined;
    if (!delivery || !record) return;
    this.c2dDeliveries.delete(delivery);
    record.linkState.c2dInFlight.delete(delivery);
    const queue = this.c2dQueues.get(deviceKey(record.hubHostName, record.deviceId));
    if (!queue) return;
    if (outcome === "abandoned") {
      if (record.entry.deliveryCount >= C2dLimits.maxDeliveryCount) {
        queue.settled();
        this.emitFeedback(record.hubHostName, record.deviceId, record.entry.messageId, "deadLettered");
        return;
      }
      queue.requeue(record.entry);
      this.emitFeedback(record.hubHostName, record.deviceId, record.entry.messageId, "abandoned");
      setImmediate(() => this.flushC2d(record.hubHostName, record.deviceId));
      return;
    }
    queue.settled();
    this.emitFeedback(record.hubHostName, record.deviceId, record.entry.messageId, outcome);
  }

  private emitFeedback(
    hubHostName: string,
    deviceId: string,
    messageId: string,
    outcome: C2dFeedbackEvent["outcome"],
  ): void {
    const event: C2dFeedbackEvent = { hubHostName, deviceId, messageId, outcome };
    this.emitSafely("c2dFeedback", event);
  }

  // ------------------------------------------------------------------------------------------ plumbing

  private onSendable(context: EventContext): void {
    const sender = context.sender;
    const state = this.connections.get(context.connection);
    const linkState = sender ? state?.links.get(sender) : undefined;
    if (!sender || !linkState) return;
    this.drain(linkState);
    if (linkState.role === "c2d" && linkState.hubHostName && linkState.deviceId) {
      this.flushC2d(linkState.hubHostName, linkState.deviceId);
    }
  }

  /** Sends now when the device has granted credit, else queues until it does (obligation 5). */
  private send(linkState: LinkState, message: Message): void {
    const sender = linkState.link as Sender;
    if (linkState.outbox.length === 0 && sender.is_open() && sender.sendable()) {
      sender.send(message);
      return;
    }
    linkState.outbox.push({ message });
  }

  private drain(linkState: LinkState): void {
    const sender = linkState.link as Sender;
    while (linkState.outbox.length > 0 && sender.is_open() && sender.sendable()) {
      const next = linkState.outbox.shift();
      if (next) sender.send(next.message, next.tag);
    }
  }

  private onLinkClosed(context: EventContext): void {
    const link = context.sender ?? context.receiver;
    const state = this.connections.get(context.connection);
    if (link && state) this.forgetLink(state, link);
  }

  private forgetLink(state: ConnectionState, link: Sender | Receiver): void {
    const linkState = state.links.get(link);
    if (!linkState) return;
    state.links.delete(link);
    if (linkState.role === "c2d") this.requeueUnsettledC2d(linkState);
  }

  /** Messages out on a C2D link that went away unsettled are delivered again later (lock lost). */
  private requeueUnsettledC2d(linkState: LinkState): void {
    const deliveries = [...linkState.c2dInFlight].reverse();
    linkState.c2dInFlight.clear();
    for (const delivery of deliveries) {
      const record = this.c2dDeliveries.get(delivery);
      if (!record) continue;
      this.c2dDeliveries.delete(delivery);
      this.c2dQueues.get(deviceKey(record.hubHostName, record.deviceId))?.requeue(record.entry);
    }
  }

  private connectionEnded(state: ConnectionState): void {
    if (this.connections.get(state.connection) !== state) return;
    this.connections.delete(state.connection);
    for (const link of [...state.links.keys()]) this.forgetLink(state, link);
    for (const authorization of [...state.authorizations.values()]) {
      state.authorizations.delete(authorization.deviceId);
      if (authorization.expiryTimer) this.clearTimer(authorization.expiryTimer);
      if (!this.isConnected(authorization.hubHostName, authorization.deviceId))
        this.emitConnection(authorization, false);
    }
  }

  private authorizationsOf(hubHostName: string, deviceId: string): [ConnectionState, Authorization][] {
    const hub = hubHostName.toLowerCase();
    const found: [ConnectionState, Authorization][] = [];
    for (const state of this.connections.values()) {
      const authorization = state.authorizations.get(deviceId);
      if (authorization && authorization.hubHostName.toLowerCase() === hub)
        found.push([state, authorization]);
    }
    return found;
  }

  private requireDevice(hubHostName: string, deviceId: string): HubDeviceRecord {
    const device = this.store.get(hubHostName, deviceId);
    if (!device)
      throw new HubServiceError(404, "DeviceNotFound", `Device ${deviceId} not found on ${hubHostName}.`);
    return device;
  }

  /** A listener that throws must not break the hub's own processing. */
  private emitSafely(event: string, payload: unknown): void {
    try {
      this.events.emit(event, payload);
    } catch {
      // The listener's failure is its own; the hub carries on.
    }
  }

  private setTimer(callback: () => void, delayMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      try {
        callback();
      } catch {
        // Timer work only touches links that may be gone; nothing to recover.
      }
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
    return timer;
  }

  private clearTimer(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }
}

// ---------------------------------------------------------------------------------------------- helpers

interface AttachFrame {
  source?: { address?: string } & Record<string, unknown>;
  target?: { address?: string } & Record<string, unknown>;
  snd_settle_mode?: 0 | 1 | 2;
  properties?: Record<string, unknown>;
}

/** rhea keeps the peer's ATTACH in link.remote.attach, which its typings omit. */
function remoteAttach(link: Sender | Receiver): AttachFrame {
  return (link as unknown as { remote: { attach?: AttachFrame } }).remote.attach ?? {};
}

function localAttach(link: Sender | Receiver): { snd_settle_mode?: number } {
  return (link as unknown as { local: { attach: { snd_settle_mode?: number } } }).local.attach;
}

function remoteOpen(connection: Connection): { hostname?: unknown } {
  return (connection as unknown as { remote: { open?: { hostname?: unknown } } }).remote.open ?? {};
}

/** rhea's Message type is narrower than what goes on the wire (binary user-id, typed annotations). */
function amqpMessage(fields: Record<string, unknown>): Message {
  return fields as unknown as Message;
}

function destroySocket(connection: Connection): void {
  // rhea's abort_socket also stops its heartbeat timers and reports 'disconnected'; a bare destroy() would
  // leave the connection "open" inside rhea with a 480 s idle timer keeping the process alive.
  const internals = connection as unknown as {
    socket?: { destroy(): void };
    abort_socket?(socket: unknown): void;
  };
  const socket = internals.socket;
  if (!socket) return;
  if (typeof internals.abort_socket === "function") internals.abort_socket(socket);
  else socket.destroy();
}

function closeLink(link: Sender | Receiver, error: AmqpError): void {
  try {
    if (!link.is_closed()) link.close(error);
  } catch {
    // The connection is already gone.
  }
}

function newLinkState(link: Sender | Receiver, role: LinkRole, channelCorrelationId: unknown): LinkState {
  return { link, role, channelCorrelationId, desiredSubscribed: false, outbox: [], c2dInFlight: new Set() };
}

function roleFor(kind: DeviceLinkKind, deviceSends: boolean): LinkRole {
  switch (kind) {
    case "telemetry":
      return "telemetry";
    case "c2d":
      return "c2d";
    case "twin":
      return deviceSends ? "twin-request" : "twin-reply";
    case "methods":
      return deviceSends ? "method-response" : "method-request";
  }
}

/** Settles a device's delivery; pre-settled ones are only settled locally (obligation 6). */
function settle(delivery: Delivery, outcome: "accept" | "reject", error?: AmqpError): void {
  try {
    if (delivery.remote_settled) {
      delivery.update(true);
      return;
    }
    if (outcome === "accept") delivery.accept();
    else delivery.reject(error);
  } catch {
    // The link closed before we answered; the device will resend on its new link.
  }
}

function azureError(name: AzureErrorName, message: string): AzureErrorBody {
  return {
    errorCode: AzureErrorCode[name],
    trackingId: randomUUID().replace(/-/g, ""),
    message,
    timestampUtc: new Date().toISOString(),
  };
}
