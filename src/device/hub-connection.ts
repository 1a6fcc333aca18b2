// One connection to IoT Hub (AMQP by default; MQTT or either over WebSocket when configured) through the unmodified azure-iot-device Client, with the SDK's own retry
// switched off (NoRetry): every drop reaches us as one 'disconnect', and the session's loop is the only
// one that reconnects (docs/hub-amqp-protocol.md §6.1, §6.2). Each connection is used once and thrown away, and
// every listener it adds is removed on close (docs/architecture.md §7.1, 10-mqtt.js `_clientOn` / `_clientRemoveListeners`).
import { EventEmitter } from "node:events";
import {
  Client,
  SharedAccessKeyAuthenticationProvider,
  X509AuthenticationProvider,
  type Message,
} from "azure-iot-device";
import type { IncomingCloudMessage } from "./c2d-inbox.js";
import { HubCommands } from "./hub-commands.js";
import type { IncomingMethodCall } from "./method-dispatcher.js";
import type { Agent } from "node:https";
import { Amqp, AmqpWs } from "azure-iot-device-amqp";
import { Mqtt, MqttWs } from "azure-iot-device-mqtt";
import { errors, NoRetry } from "azure-iot-common";
import { TpmAuthenticationProvider, type TpmSigner } from "../tpm/authentication-provider.js";
import type { HubTransportKind } from "./config.js";
import { withDeadline } from "./deadline.js";
import { ConfigurationError } from "./errors.js";

export type HubCredentials =
  | { kind: "symmetricKey"; key: string }
  | { kind: "x509"; cert: string; key: string }
  | { kind: "tpm"; signer: TpmSigner };

export interface HubIdentity {
  assignedHub: string;
  deviceId: string;
}

export interface HubConnectOptions {
  /** Default "amqp". */
  transport?: HubTransportKind;
  /** Opens the WebSocket of amqp-ws / mqtt-ws (an HTTP proxy tunnel); ignored by the others. */
  webSocketAgent?: Agent;
  ca?: string;
  modelId?: string;
  productInfo?: string;
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  signal?: AbortSignal;
}

/** The twin document as the hub returns it: each section carries its `$version`. */
export interface TwinDocument {
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

/**
 * What the session needs from a hub connection. Events: `disconnect` (error) once when the connection
 * is lost, `desired` (patch incl. $version) for each desired-property notification.
 */
export interface HubLinkEvents {
  disconnect: (error: Error | undefined) => void;
  desired: (patch: Record<string, unknown>) => void;
  /** A direct-method call (after enableMethods), whatever its name. */
  method: (call: IncomingMethodCall) => void;
  /** A cloud-to-device message (while receiving); it stays unsettled until its `settle`. */
  cloudMessage: (message: IncomingCloudMessage) => void;
}

export interface HubLink {
  sendEvent(message: Message): Promise<void>;
  enableDesiredUpdates(): Promise<void>;
  getTwin(): Promise<TwinDocument>;
  updateReported(patch: Record<string, unknown>): Promise<void>;
  /** Listens for direct-method calls: `names` through the SDK's own dispatch, every other name too. */
  enableMethods(names: readonly string[]): Promise<void>;
  /** Starts receiving cloud-to-device messages (until the connection closes). */
  receiveCloudMessages(): void;
  /** Releases the socket, the SDK's timers and every listener; resolves within closeTimeoutMs. */
  close(): Promise<void>;
  on<E extends keyof HubLinkEvents>(event: E, listener: HubLinkEvents[E]): unknown;
  off<E extends keyof HubLinkEvents>(event: E, listener: HubLinkEvents[E]): unknown;
}

type Listener = Parameters<EventEmitter["on"]>[1];

/** The azure-iot-device transport methods used below (typed in internal_client.d.ts as DeviceTransport). */
type DeviceTransport = Client["_transport"];

function authenticationProvider(identity: HubIdentity, credentials: HubCredentials) {
  switch (credentials.kind) {
    case "symmetricKey":
      // The same connection string the SDK samples build from a DPS result (docs/dps-protocol.md §11); the
      // provider renews the token 15 min before each hour is up.
      return SharedAccessKeyAuthenticationProvider.fromConnectionString(
        `HostName=${identity.assignedHub};DeviceId=${identity.deviceId};SharedAccessKey=${credentials.key}`,
      );
    case "x509":
      return X509AuthenticationProvider.fromX509Options(identity.deviceId, identity.assignedHub, {
        cert: credentials.cert,
        key: credentials.key,
      });
    case "tpm":
      return new TpmAuthenticationProvider(
        { host: identity.assignedHub, deviceId: identity.deviceId },
        credentials.signer,
      );
  }
}

/** The SDK's transport class for each hub transport (docs/hub-mqtt-protocol.md, docs/hub-amqp-protocol.md). */
const TRANSPORT_CLASSES = { amqp: Amqp, "amqp-ws": AmqpWs, mqtt: Mqtt, "mqtt-ws": MqttWs } as const;

/** The client options for one transport: each setOptions call replaces the previous options. */
function clientOptionsFor(transport: HubTransportKind, options: HubConnectOptions): Record<string, unknown> {
  const agent = options.webSocketAgent;
  return {
    ...(options.ca ? { ca: options.ca } : {}),
    ...(options.modelId ? { modelId: options.modelId } : {}),
    ...(options.productInfo ? { productInfo: options.productInfo } : {}),
    ...(agent && transport === "amqp-ws" ? { amqp: { webSocketAgent: agent } } : {}),
    ...(agent && transport === "mqtt-ws" ? { mqtt: { webSocketAgent: agent } } : {}),
  };
}

export class HubConnection extends EventEmitter implements HubLink {
  private readonly registered: Array<{ emitter: EventEmitter; event: string; listener: Listener }> = [];
  private closing: Promise<void> | undefined;
  private lost = false;
  private readonly commands: HubCommands;

  private constructor(
    private readonly client: Client,
    private readonly transport: DeviceTransport,
    private readonly provider: ReturnType<typeof authenticationProvider>,
    private readonly closeTimeoutMs: number,
  ) {
    super();
    this.commands = new HubCommands(client, transport, {
      method: (call) => this.emit("method", call),
      cloudMessage: (message) => this.emit("cloudMessage", message),
      usable: () => !this.lost && !this.closing,
    });
  }

  /** Opens a connection: TLS, AMQP, CBS (or X.509). Rejects with the SDK's error or OperationTimeoutError. */
  static async open(
    identity: HubIdentity,
    credentials: HubCredentials,
    options: HubConnectOptions,
  ): Promise<HubConnection> {
    const transport = options.transport ?? "amqp";
    // The WebSocket transports append ":443" to the host themselves; a port there makes an invalid URL.
    if ((transport === "amqp-ws" || transport === "mqtt-ws") && identity.assignedHub.includes(":")) {
      throw new ConfigurationError(
        `the ${transport} hub transport always uses port 443: "${identity.assignedHub}" names another port`,
      );
    }
    const provider = authenticationProvider(identity, credentials);
    const client = Client.fromAuthenticationProvider(
      provider,
      TRANSPORT_CLASSES[transport] as Parameters<typeof Client.fromAuthenticationProvider>[1],
    );
    const connection = new HubConnection(client, client._transport, provider, options.closeTimeoutMs);
    // The SDK's MQTT transport turns any failure of its first connect (a dead proxy, a refused socket) into
    // "Not authorized", which would read as a refused identity. Each connection here is opened once, so let it
    // report the real error, as it does on later connects.
    if (transport === "mqtt" || transport === "mqtt-ws") {
      Object.assign(connection.transport, { _firstConnection: false });
    }
    connection.track(
      client,
      "disconnect",
      (result: { transportObj?: unknown; reason?: unknown } | undefined) =>
        connection.markLost(asError(result?.transportObj) ?? asError(result?.reason)),
    );
    // The SDK emits 'error' on the client in a few paths; an unheard 'error' would end the process.
    connection.track(client, "error", (error: unknown) => connection.markLost(asError(error)));
    // A client with a retry policy keeps a retryable disconnect to itself (it reconnects lazily on the next
    // send, and a send in flight then waits for an ack that never comes). With NoRetry, set below, it reports
    // each one; the transport's own event stays as the guard should that ever change.
    connection.track(connection.transport, "disconnect", (error: unknown) =>
      connection.markLost(asError(error) ?? new Error("the IoT Hub connection ended")),
    );
    // A detached twin, method or C2D link (TwinDetachedError, ...): the connection is no longer whole.
    connection.track(connection.transport, "error", (error: unknown) => connection.markLost(asError(error)));
    const container = rheaContainerOf(connection.transport);
    if (container) {
      // A link the hub detaches with an error: rundown starts here, before any operation notices
      // (docs/hub-amqp-protocol.md §6.2).
      connection.track(container, "azure-iot-amqp-base:error-indicated", (error: unknown) =>
        connection.markLost(asError(error) ?? new Error("IoT Hub detached a link")),
      );
      // Heard here, a socket closing after the SDK let go of it (a failed WebSocket's close) is not printed by rhea.
      connection.track(container, "disconnected", () => undefined);
    }
    connection.track(connection.transport, "twinDesiredPropertiesUpdate", (patch: unknown) => {
      if (typeof patch === "object" && patch !== null) connection.emit("desired", patch);
    });
    try {
      client.setRetryPolicy(new NoRetry());
      // One setOptions call: each call replaces the previous options (docs/hub-amqp-protocol.md §10.2).
      const clientOptions = clientOptionsFor(transport, options);
      if (Object.keys(clientOptions).length > 0) await client.setOptions(clientOptions);
      await withDeadline(client.open(), "IoT Hub connect", options.connectTimeoutMs, options.signal);
      return connection;
    } catch (error) {
      endOpeningSocket(connection.transport);
      await connection.close();
      throw error;
    }
  }

  sendEvent(message: Message): Promise<void> {
    return this.whileOpen(() => this.client.sendEvent(message).then(() => undefined));
  }

  enableDesiredUpdates(): Promise<void> {
    return this.whileOpen(
      () =>
        new Promise((resolve, reject) =>
          this.transport.enableTwinDesiredPropertiesUpdates((error) => (error ? reject(error) : resolve())),
        ),
    );
  }

  getTwin(): Promise<TwinDocument> {
    return this.whileOpen(
      () =>
        new Promise((resolve, reject) =>
          this.transport.getTwin((error, twin) => {
            if (error) reject(error);
            else resolve({ desired: { ...twin?.desired }, reported: { ...twin?.reported } });
          }),
        ),
    );
  }

  updateReported(patch: Record<string, unknown>): Promise<void> {
    return this.whileOpen(
      () =>
        new Promise((resolve, reject) =>
          this.transport.updateTwinReportedProperties(patch, (error) => (error ? reject(error) : resolve())),
        ),
    );
  }

  enableMethods(names: readonly string[]): Promise<void> {
    return this.commands.enableMethods(names);
  }

  receiveCloudMessages(): void {
    this.commands.receiveCloudMessages();
  }

  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    for (const { emitter, event, listener } of this.registered.splice(0))
      emitter.removeListener(event, listener);
    this.commands.release();
    // Late SDK errors during the rundown must still be heard by someone, and a socket rhea reports after the SDK
    // let go of it (a WebSocket given up while opening: its error, then its close) is not printed by rhea.
    const ignore = (): void => undefined;
    this.client.on("error", ignore);
    rheaContainerOf(this.transport)?.on("disconnected", ignore);
    try {
      await withDeadline(this.client.close(), "IoT Hub close", this.closeTimeoutMs);
    } catch {
      // A close that fails or hangs leaves nothing we can release further; the SDK forces its rundown.
    } finally {
      if (this.provider instanceof TpmAuthenticationProvider) this.provider.stop();
      this.removeAllListeners();
    }
  }

  /**
   * Runs an operation on a connection that is neither lost nor closed. The SDK's transports connect again on
   * their own for any operation, so a lost or closed connection would otherwise open a second one behind the
   * session's back; it fails at once instead, retryable, and the session's own loop reconnects.
   */
  private whileOpen<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new errors.NotConnectedError("the IoT Hub connection is closed"));
    if (this.lost) return Promise.reject(new errors.NotConnectedError("the IoT Hub connection was lost"));
    return operation();
  }

  private track<A extends unknown[]>(
    emitter: EventEmitter,
    event: string,
    handler: (...args: A) => void,
  ): void {
    const listener = handler as Listener;
    emitter.on(event, listener);
    this.registered.push({ emitter, event, listener });
  }

  private markLost(error: Error | undefined): void {
    if (this.lost || this.closing) return;
    this.lost = true;
    this.emit("disconnect", error);
  }
}

/**
 * Ends the socket of a connect that was given up (time-out, abort). The SDK's close waits for a connect in
 * progress to end, and against a hub that never answers it does not: the socket stayed open for minutes, one
 * more with each retry. Private fields of the SDK, each looked up with care: if they move, this does nothing
 * and the SDK's own close is all that runs, as before (docs/hub-amqp-protocol.md §10.2).
 */
function endOpeningSocket(transport: unknown): void {
  const sdk = transport as
    | {
        _amqp?: { _rheaConnection?: { socket?: { destroy?: () => void; end?: () => void } } };
        _mqtt?: { _mqttClient?: { end?: (force: boolean) => void } };
      }
    | undefined;
  const amqpSocket = sdk?._amqp?._rheaConnection?.socket;
  if (typeof amqpSocket?.destroy === "function") amqpSocket.destroy();
  // Over WebSocket rhea holds a wrapper whose end() closes the WebSocket: a handshake in progress is aborted,
  // its socket destroyed; an open one is closed by the closing handshake (ws destroys it after 30 s unanswered).
  else if (typeof amqpSocket?.end === "function") amqpSocket.end();
  const mqttClient = sdk?._mqtt?._mqttClient;
  if (typeof mqttClient?.end === "function") mqttClient.end(true);
}

/** The rhea container under the SDK's AMQP transport (azure-iot-amqp-base keeps it for the connection's life). */
function rheaContainerOf(transport: unknown): EventEmitter | undefined {
  const amqp = (transport as { _amqp?: { _rheaContainer?: unknown } } | undefined)?._amqp;
  const container = amqp?._rheaContainer;
  return container instanceof EventEmitter ? container : undefined;
}

function asError(value: unknown): Error | undefined {
  return value instanceof Error ? value : undefined;
}
