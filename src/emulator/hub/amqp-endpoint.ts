// The device-facing AMQP endpoint of the emulated IoT Hub: TLS with optional SASL, the rhea container and its events,
// and routing each attached link and each message to the part that serves it (docs/hub-amqp-protocol.md §1-§5, §8).
import { randomUUID } from "node:crypto";
import type { EventEmitter } from "node:events";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import {
  create_container,
  type Connection,
  type Container,
  type EventContext,
  type Receiver,
  type Sender,
  type Source,
  type TerminusOptions,
} from "rhea";
import {
  closeLink,
  Condition,
  destroySocket,
  localAttach,
  remoteAttach,
  remoteOpen,
  settle,
} from "./amqp-wire.js";
import { offerHubSaslMechanisms } from "./amqp-sasl.js";
import { C2dDispatch, type C2dOutcome } from "./c2d-dispatch.js";
import { CbsLinks } from "./cbs-link.js";
import { servedHubName } from "./cbs-token-check.js";
import { DeviceConnections, type ConnectionState } from "./device-connections.js";
import type { DesiredChange, DeviceStore } from "./device-store.js";
import { FaultInjection } from "./fault-injection.js";
import { directionAllowed, parseLinkAddress, type ServiceLinkKind } from "./link-address.js";
import { LinkAuthorizer, peerCertificateInfo } from "./link-authorization.js";
import { settleClientCertificateCheck } from "../tls-client-certificate.js";
import { drainOutbox, newLinkState, roleFor } from "./link-state.js";
import { MethodInvoker } from "./method-invoker.js";
import { ServiceC2dReceiver } from "./service-c2d.js";
import { ServiceFeedback } from "./service-feedback.js";
import { MAX_TELEMETRY_BYTES, type TelemetryLog } from "./telemetry.js";
import { BATCH_MESSAGE_FORMAT } from "./telemetry-batch.js";
import { TelemetryReceiver } from "./telemetry-link.js";
import { TimerSet } from "./timer-set.js";
import { TwinLinks } from "./twin-link.js";
import type { CloudToDeviceMessage, FaultLink, MethodRequest } from "./types.js";

/** OPEN values a Microsoft AMQP stack advertises (docs/hub-amqp-protocol.md §1.4): heartbeat and 64 KB frames. */
const IDLE_TIME_OUT_MS = 240_000;
const MAX_FRAME_SIZE = 65_536;
/** Link credit granted to device sender links (rhea's default, as in the verified probe). */
const CREDIT_WINDOW = 1000;
/**
 * max-message-size announced on every ATTACH: IoT Hub's 256 KB message limit. The C SDK sizes its telemetry
 * batches by it and refuses to send when the hub announces none (docs/hub-amqp-protocol.md §3.4).
 */
const MAX_MESSAGE_SIZE = MAX_TELEMETRY_BYTES;

export interface EndpointOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string; clientCa?: string[] };
  hostNames: string[];
  /** Shared access policies of the service side. */
  servicePolicies?: { keyName: string; key: string }[];
  /** Where the C2D queues are kept across restarts. */
  c2dFile?: string;
  c2dLockTimeoutMs?: number;
}

/** One TLS listener for all hub host names; it owns the connections, the per-link handlers and the fault counters. */
export class AmqpEndpoint {
  private readonly container: Container;
  private server: TlsServer | undefined;
  private readonly timers = new TimerSet();
  private readonly connections: DeviceConnections;
  private readonly authorizer: LinkAuthorizer;
  /** Shared with the hub's other transports (MQTT, HTTPS): one set of fault counters. */
  readonly faults: FaultInjection;
  private readonly cbs: CbsLinks;
  private readonly telemetryReceiver: TelemetryReceiver;
  private readonly twins: TwinLinks;
  /** Shared with the hub's other transports: one C2D queue per device, one set of pending method calls. */
  readonly c2d: C2dDispatch;
  readonly methods: MethodInvoker;
  private readonly feedback: ServiceFeedback;
  private readonly serviceC2d: ServiceC2dReceiver;
  /** The TLS socket under each connection that arrived as a stream (AMQP over WebSocket). */
  private readonly streamSockets = new WeakMap<Connection, TLSSocket>();
  boundPort = 0;

  constructor(
    private readonly options: EndpointOptions,
    store: DeviceStore,
    telemetry: TelemetryLog,
    events: EventEmitter,
  ) {
    this.connections = new DeviceConnections(this.timers, events);
    this.authorizer = new LinkAuthorizer(store, options.hostNames, this.connections);
    this.faults = new FaultInjection(this.connections);
    this.cbs = new CbsLinks(
      options.hostNames,
      () => this.boundPort,
      store,
      this.connections,
      this.faults,
      options.servicePolicies ?? [],
    );
    this.telemetryReceiver = new TelemetryReceiver(store, telemetry, this.faults, this.timers, events);
    this.twins = new TwinLinks(store, this.connections, this.faults, events);
    this.feedback = new ServiceFeedback(this.connections, (hub, deviceId) =>
      store.generationId(hub, deviceId),
    );
    this.c2d = new C2dDispatch(store, this.connections, events, this.timers, {
      ...(options.c2dFile ? { file: options.c2dFile } : {}),
      ...(options.c2dLockTimeoutMs !== undefined ? { lockTimeoutMs: options.c2dLockTimeoutMs } : {}),
      onFeedback: (hub, deviceId, entry, outcome) => this.feedback.record(hub, deviceId, entry, outcome),
    });
    this.serviceC2d = new ServiceC2dReceiver(this.c2d);
    this.methods = new MethodInvoker(store, this.connections, this.timers);
    this.container = create_container({ id: `provisio-iothub-${randomUUID()}` });
    offerHubSaslMechanisms(this.container);
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
    server.prependListener("secureConnection", settleClientCertificateCheck);
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

  /** Serves an AMQP byte stream carried another way (AMQP over WebSocket); `tlsSocket` is the TLS socket under it. */
  acceptStream(stream: Duplex, tlsSocket: TLSSocket): void {
    const connection = this.container.create_connection({
      autoaccept: false,
      credit_window: CREDIT_WINDOW,
      idle_time_out: IDLE_TIME_OUT_MS,
      max_frame_size: MAX_FRAME_SIZE,
      container_id: this.container.id,
    } as unknown as Parameters<Container["create_connection"]>[0]) as Connection & {
      accept(socket: Duplex): void;
    };
    this.streamSockets.set(connection, tlsSocket);
    connection.accept(stream);
  }

  async close(): Promise<void> {
    this.timers.clearAll();
    this.methods.close();
    const server = this.server;
    for (const state of this.connections.all()) destroySocket(state.connection);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const state of this.connections.all()) this.connectionEnded(state);
  }

  // ------------------------------------------------------------------------------------------ service side

  connectionCount(): number {
    return this.connections.size;
  }

  isConnected(hubHostName: string, deviceId: string): boolean {
    return this.connections.isConnected(hubHostName, deviceId);
  }

  /** Revokes the device on every connection and detaches its links (device deleted or disabled). */
  disconnectDevice(hubHostName: string, deviceId: string, description: string): void {
    for (const [state, authorization] of this.connections.authorizationsOf(hubHostName, deviceId)) {
      this.connections.revoke(state, authorization, { condition: Condition.unauthorized, description });
    }
  }

  pushDesired(hubHostName: string, deviceId: string, change: DesiredChange): void {
    this.twins.pushDesired(hubHostName, deviceId, change);
  }

  sendCloudToDevice(hubHostName: string, deviceId: string, message: CloudToDeviceMessage): void {
    this.c2d.send(hubHostName, deviceId, message);
  }

  invokeMethod(
    hubHostName: string,
    deviceId: string,
    request: MethodRequest,
  ): Promise<{ status: number; payload: unknown }> {
    return this.methods.invokeMethod(hubHostName, deviceId, request);
  }

  // ------------------------------------------------------------------------------------------ faults

  dropConnection(hubHostName: string, deviceId: string): boolean {
    return this.faults.dropConnection(hubHostName, deviceId);
  }

  detachLink(hubHostName: string, deviceId: string, link: FaultLink): boolean {
    return this.faults.detachLink(hubHostName, deviceId, link);
  }

  rejectNextTokens(count: number): void {
    this.faults.rejectNextTokens(count);
  }

  throttleNext(count: number): void {
    this.faults.throttleNext(count);
  }

  exceedQuotaNext(count: number): void {
    this.faults.exceedQuotaNext(count);
  }

  throttleTwinGetsNext(count: number): void {
    this.faults.throttleTwinGetsNext(count);
  }

  delayAcks(ms: number): void {
    this.faults.delayAcks(ms);
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
    const socket = (connection.get_tls_socket() ?? this.streamSockets.get(connection)) as
      TLSSocket | undefined;
    const peer = peerCertificateInfo(socket, (this.options.tls.clientCa?.length ?? 0) > 0);
    if (peer) state.peer = peer;
    this.connections.add(state);
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
    localAttach(link).max_message_size = MAX_MESSAGE_SIZE;
    this.attach(context.connection, link, attach.target?.address, true);
  }

  /** The device attached a receiver link: we send (CBS replies, twin replies, C2D, method requests). */
  private onDeviceReceiverAttached(context: EventContext): void {
    const link = context.sender;
    if (!link) return;
    const attach = remoteAttach(link);
    link.set_source({ address: attach.source?.address } as Source);
    link.set_target((attach.target ?? {}) as TerminusOptions);
    localAttach(link).max_message_size = MAX_MESSAGE_SIZE;
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
      if (!deviceSends) this.cbs.replyLinkAttached(state, linkState);
      return;
    }
    if (!directionAllowed(parsed.kind, deviceSends)) {
      closeLink(link, {
        condition: Condition.notAllowed,
        description: `Wrong link direction for ${String(address)}.`,
      });
      return;
    }
    if (!("deviceId" in parsed)) {
      this.attachServiceLink(state, link, parsed, channelCorrelationId, String(address));
      return;
    }
    const authorization = this.authorizer.authorize(state, parsed.deviceId);
    if (!authorization) {
      closeLink(link, {
        condition: Condition.unauthorized,
        description: `The connection is not authorized for device ${parsed.deviceId}.`,
      });
      return;
    }
    const namedHub =
      parsed.hubHost === undefined
        ? undefined
        : servedHubName(parsed.hubHost, { hostNames: this.options.hostNames, port: this.boundPort });
    if (parsed.hubHost !== undefined && namedHub?.toLowerCase() !== authorization.hubHostName.toLowerCase()) {
      closeLink(link, {
        condition: Condition.notFound,
        description: `The link address ${String(address)} names another IoT hub.`,
      });
      return;
    }
    const linkState = newLinkState(link, roleFor(parsed.kind, deviceSends), channelCorrelationId);
    linkState.hubHostName = authorization.hubHostName;
    linkState.deviceId = authorization.deviceId;
    state.links.set(link, linkState);
    if (linkState.role === "c2d")
      setImmediate(() => this.c2d.flush(authorization.hubHostName, authorization.deviceId));
    if (linkState.role === "method-request")
      this.methods.linkAttached(authorization.hubHostName, authorization.deviceId);
  }

  /** A service client's link: allowed once a policy token for the hub the address names was put. */
  private attachServiceLink(
    state: ConnectionState,
    link: Sender | Receiver,
    parsed: { kind: ServiceLinkKind; hubHost?: string },
    channelCorrelationId: unknown,
    address: string,
  ): void {
    const service = state.service && state.service.expiresAtMs > Date.now() ? state.service : undefined;
    const namedHub =
      parsed.hubHost === undefined
        ? service?.hubHostName
        : servedHubName(parsed.hubHost, { hostNames: this.options.hostNames, port: this.boundPort });
    if (!service || namedHub?.toLowerCase() !== service.hubHostName.toLowerCase()) {
      closeLink(link, {
        condition: Condition.unauthorized,
        description: `The connection is not authorized for ${address}.`,
      });
      return;
    }
    const linkState = newLinkState(link, parsed.kind, channelCorrelationId);
    linkState.hubHostName = service.hubHostName;
    state.links.set(link, linkState);
    if (parsed.kind === "service-feedback") setImmediate(() => this.feedback.flush(service.hubHostName));
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
    // rhea hands over a transfer of another message-format undecoded, as bytes (only batches are known).
    const format = (context as { format?: unknown }).format;
    if (typeof format === "number" && format !== 0) {
      if (linkState.role === "telemetry" && format === BATCH_MESSAGE_FORMAT && Buffer.isBuffer(message)) {
        this.telemetryReceiver.onBatch(state, linkState, delivery, message);
      } else {
        settle(delivery, "reject", {
          condition: Condition.notImplemented,
          description: `Message format ${format} is not supported on this link.`,
        });
      }
      return;
    }
    switch (linkState.role) {
      case "cbs-request":
        settle(delivery, "accept");
        this.cbs.onPutToken(state, message);
        return;
      case "telemetry":
        this.telemetryReceiver.onTelemetry(state, linkState, delivery, message);
        return;
      case "twin-request":
        // Twin requests arrive pre-settled; settle locally or the session window fills up (obligation 6).
        settle(delivery, "accept");
        this.twins.onTwinRequest(state, linkState, message);
        return;
      case "method-response":
        settle(delivery, "accept");
        this.methods.onMethodResponse(message);
        return;
      case "service-c2d":
        this.serviceC2d.onMessage(state, delivery, message);
        return;
      default:
        settle(delivery, "reject", { condition: Condition.notAllowed, description: "Unexpected message." });
    }
  }

  private onSendable(context: EventContext): void {
    const sender = context.sender;
    const state = this.connections.get(context.connection);
    const linkState = sender ? state?.links.get(sender) : undefined;
    if (!sender || !linkState) return;
    drainOutbox(linkState);
    if (linkState.role === "c2d" && linkState.hubHostName && linkState.deviceId) {
      this.c2d.flush(linkState.hubHostName, linkState.deviceId);
    }
    if (linkState.role === "service-feedback" && linkState.hubHostName)
      this.feedback.flush(linkState.hubHostName);
  }

  private onC2dOutcome(context: EventContext, outcome: C2dOutcome): void {
    this.c2d.onOutcome(context.delivery, outcome);
    this.feedback.onOutcome(context.delivery, outcome === "completed");
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
    if (linkState.role === "c2d") this.c2d.linkClosed(linkState);
    if (linkState.role === "service-feedback") this.feedback.linkClosed(linkState);
  }

  private connectionEnded(state: ConnectionState): void {
    if (!this.connections.remove(state)) return;
    for (const link of [...state.links.keys()]) this.forgetLink(state, link);
    this.connections.releaseAll(state);
  }
}
