// An AMQP client (rhea) that speaks to DPS and IoT Hub the way the Azure IoT C SDK does (prov_transport_amqp_common,
// iothubtransport_amqp_*, uAMQP's saslclientio, sasl_mssbcbs, cbs and amqp_management), so the emulator is
// tested against those wire shapes without building the C SDK:
// - link addresses "amqps://{host}/{idScope}/registrations/{registrationId}" and "amqps://{hub}/devices/{id}/...";
//   DPS links with source "remote_endpoint" / target "local_endpoint" and the api-version link property;
// - DPS requests with no correlation-id (the C SDK matches replies by link, not by id);
// - SASL MSSBCBS on the hub (empty sasl-init; the client fails when the server does not offer it);
// - CBS put-token with a ulong message-id (uAMQP's amqp_management counter);
// - telemetry always batched: message-format 0x80013700, one data section per encoded message, each encoded as
//   properties, application-properties, message-annotations, data, in that order.
import { randomUUID } from "node:crypto";
import {
  create_container,
  message as rheaMessage,
  type Connection,
  type Delivery,
  type EventContext,
  type Message,
  type Receiver,
  type Sender,
} from "rhea";

export const C_SDK_BATCH_FORMAT = 0x80013700;

/** A body of one data section (rhea types it as any). */
export function dataSection(bytes: Buffer): unknown {
  return rheaMessage.data_section(bytes) as unknown;
}
/** The uAMQP C SDK's reserve for the batch envelope: it refuses to send when the peer announces less. */
export const C_SDK_BATCHING_RESERVE = 1024;
const DPS_API_VERSION = "2019-03-31";
const WAIT_MS = 15_000;

export interface CSdkEndpoint {
  /** Address to dial. */
  address: string;
  port: number;
  /** The host name the C SDK puts into link addresses, OPEN, SNI and sasl-init. */
  hostName: string;
  ca: string;
}

export function within<T>(promise: Promise<T>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type SaslChoice = { mechanism: "PLAIN"; username: string; password: string } | { mechanism: "MSSBCBS" };

/** Opens a TLS connection with the one SASL mechanism the C SDK would use; rejects when it is refused. */
async function openConnection(endpoint: CSdkEndpoint, sasl: SaslChoice): Promise<Connection> {
  const container = create_container({ id: `c-sdk-${randomUUID()}` });
  const saslOptions =
    sasl.mechanism === "PLAIN"
      ? { username: sasl.username, password: sasl.password }
      : {
          // uAMQP's sasl_mssbcbs: mechanism name MSSBCBS, no initial response, no challenges. rhea fails the
          // connection when the server does not offer it, as saslclientio does.
          sasl_mechanisms: {
            MSSBCBS: () => ({
              start: (callback: (error: unknown, response?: Buffer) => void) =>
                callback(undefined, undefined),
              step: (_challenge: unknown, callback: (error: unknown, response?: Buffer) => void) =>
                callback(undefined, undefined),
            }),
          },
        };
  const connection = container.connect({
    host: endpoint.address,
    port: endpoint.port,
    hostname: endpoint.hostName,
    // TLS names carry no port (a hub name with one is the emulator's, not Azure's).
    servername: endpoint.hostName.replace(/:\d+$/, ""),
    sasl_init_hostname: endpoint.hostName,
    transport: "tls",
    ca: endpoint.ca,
    reconnect: false,
    ...saslOptions,
  });
  return within(
    new Promise<Connection>((resolve, reject) => {
      connection.once("connection_open", () => resolve(connection));
      connection.once("connection_error", (context: EventContext) =>
        reject(new Error(JSON.stringify(context.connection.error ?? "connection error"))),
      );
      connection.once("disconnected", (context: EventContext) =>
        reject(new Error(`disconnected: ${JSON.stringify((context as { error?: unknown }).error ?? "")}`)),
      );
    }),
    "AMQP connection open",
  );
}

function waitSendable(sender: Sender, what: string): Promise<Sender> {
  return within(
    new Promise<Sender>((resolve, reject) => {
      if (sender.sendable()) return resolve(sender);
      sender.once("sendable", () => resolve(sender));
      sender.once("sender_close", () =>
        reject(new Error(`${what} detached: ${JSON.stringify(sender.error ?? null)}`)),
      );
    }),
    `${what} sendable`,
  );
}

function waitReceiverOpen(receiver: Receiver, what: string): Promise<Receiver> {
  return within(
    new Promise<Receiver>((resolve, reject) => {
      receiver.once("receiver_open", () => resolve(receiver));
      receiver.once("receiver_close", () =>
        reject(new Error(`${what} detached: ${JSON.stringify(receiver.error ?? null)}`)),
      );
    }),
    `${what} attach`,
  );
}

/** The outcome of one transfer, as the device sees the hub's disposition. */
export type TransferOutcome =
  | { state: "accepted" }
  | { state: "rejected"; condition: string | undefined; description: string | undefined }
  | { state: "released" | "modified" };

function outcomeOf(delivery: Delivery, sender: Sender): Promise<TransferOutcome> {
  return within(
    new Promise<TransferOutcome>((resolve) => {
      const done = (context: EventContext): void => {
        if (context.delivery !== delivery) return;
        sender.off("accepted", onAccepted);
        sender.off("rejected", onRejected);
        sender.off("released", onReleased);
        sender.off("modified", onModified);
        resolve(outcome(context));
      };
      let outcome: (context: EventContext) => TransferOutcome;
      const onAccepted = (context: EventContext): void => {
        outcome = () => ({ state: "accepted" });
        done(context);
      };
      const onRejected = (context: EventContext): void => {
        outcome = (c) => {
          const error = (c.delivery?.remote_state as { error?: { condition?: string; description?: string } })
            ?.error;
          return { state: "rejected", condition: error?.condition, description: error?.description };
        };
        done(context);
      };
      const onReleased = (context: EventContext): void => {
        outcome = () => ({ state: "released" });
        done(context);
      };
      const onModified = (context: EventContext): void => {
        outcome = () => ({ state: "modified" });
        done(context);
      };
      sender.on("accepted", onAccepted);
      sender.on("rejected", onRejected);
      sender.on("released", onReleased);
      sender.on("modified", onModified);
    }),
    "transfer outcome",
  );
}

// ------------------------------------------------------------------------------------------------ DPS

export interface CSdkRegistration {
  status: string;
  registrationState?: { assignedHub?: string; deviceId?: string; status?: string };
}

/**
 * Registers with symmetric-key attestation the way prov_transport_amqp_common does: SASL PLAIN with
 * "{idScope}/registrations/{registrationId}" and the SAS token, then register and poll on the amqps:// links.
 */
export async function registerLikeCSdk(options: {
  endpoint: CSdkEndpoint;
  idScope: string;
  registrationId: string;
  sasToken: string;
}): Promise<CSdkRegistration> {
  const { endpoint, idScope, registrationId } = options;
  const connection = await openConnection(endpoint, {
    mechanism: "PLAIN",
    username: `${idScope}/registrations/${registrationId}`,
    password: options.sasToken,
  });
  try {
    const address = `amqps://${endpoint.hostName}/${idScope}/registrations/${registrationId}`;
    const properties = { "com.microsoft:api-version": DPS_API_VERSION };
    const receiver = await waitReceiverOpen(
      connection.open_receiver({
        name: "recv_link",
        source: { address },
        target: { address: "local_endpoint" },
        rcv_settle_mode: 0,
        properties,
      }),
      "DPS receiver",
    );
    const sender = await waitSendable(
      connection.open_sender({
        name: "sender_link",
        source: { address: "remote_endpoint" },
        target: { address },
        properties,
      }),
      "DPS sender",
    );
    const replies: Message[] = [];
    let wake: (() => void) | undefined;
    receiver.on("message", (context: EventContext) => {
      if (context.message) replies.push(context.message);
      wake?.();
    });
    const request = async (operationType: string, operationId?: string): Promise<CSdkRegistration> => {
      const delivery = sender.send({
        application_properties: {
          "iotdps-operation-type": operationType,
          ...(operationId ? { "iotdps-operation-id": operationId } : {}),
        },
        body: dataSection(Buffer.from(JSON.stringify({ registrationId }))),
      });
      const outcome = await outcomeOf(delivery, sender);
      if (outcome.state !== "accepted")
        throw new Error(`DPS refused the request: ${JSON.stringify(outcome)}`);
      const reply =
        replies.shift() ??
        (await within(
          new Promise<Message>((resolve) => {
            wake = () => {
              const next = replies.shift();
              if (next) resolve(next);
            };
          }),
          "DPS reply",
        ));
      const body = reply.body as { content?: Buffer } | Buffer | string;
      const text = Buffer.isBuffer(body)
        ? body.toString()
        : typeof body === "string"
          ? body
          : String(body.content);
      return JSON.parse(text) as CSdkRegistration;
    };
    let state = await request("iotdps-register");
    for (let poll = 0; state.status === "assigning" && poll < 20; poll++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      state = await request("iotdps-get-operationstatus", (state as { operationId?: string }).operationId);
    }
    return state;
  } finally {
    connection.close();
  }
}

// ------------------------------------------------------------------------------------------------ IoT Hub

export interface CSdkMessage {
  body: Buffer;
  messageId?: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  properties?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** uAMQP's encoding of an empty properties list: described(0x73) list0. */
export const EMPTY_PROPERTIES_SECTION = Buffer.from([0x00, 0x53, 0x73, 0x45]);

/** rhea always appends a body; without one, that is an amqp-value null section (00 53 77 40). */
const NULL_VALUE_SECTION = Buffer.from([0x00, 0x53, 0x77, 0x40]);

/** One non-body section, encoded by rhea without the body section it would add. */
function sectionOf(fields: Record<string, unknown>): Buffer {
  const encoded = rheaMessage.encode(fields);
  if (!encoded.subarray(-NULL_VALUE_SECTION.length).equals(NULL_VALUE_SECTION))
    throw new Error("unexpected rhea encoding");
  return encoded.subarray(0, encoded.length - NULL_VALUE_SECTION.length);
}

/** One message as message_create_uamqp_encoding_from_iothub_message lays it out inside a batch. */
export function encodeLikeCSdk(message: CSdkMessage): Buffer {
  const systemProperties = {
    ...(message.messageId !== undefined ? { message_id: message.messageId } : {}),
    ...(message.correlationId !== undefined ? { correlation_id: message.correlationId } : {}),
    ...(message.contentType !== undefined ? { content_type: message.contentType } : {}),
    ...(message.contentEncoding !== undefined ? { content_encoding: message.contentEncoding } : {}),
  };
  const sections = [
    Object.keys(systemProperties).length > 0 ? sectionOf(systemProperties) : EMPTY_PROPERTIES_SECTION,
  ];
  if (message.properties && Object.keys(message.properties).length > 0)
    sections.push(sectionOf({ application_properties: message.properties }));
  if (message.annotations && Object.keys(message.annotations).length > 0)
    sections.push(sectionOf({ message_annotations: message.annotations }));
  sections.push(rheaMessage.encode({ body: dataSection(message.body) }));
  return Buffer.concat(sections);
}

/** The batch envelope: a message whose data sections are the encoded messages. */
export function batchLikeCSdk(encodedMessages: Buffer[]): Buffer {
  return rheaMessage.encode({ body: rheaMessage.data_sections(encodedMessages) as unknown });
}

export class CSdkHubClient {
  private cbs: { sender: Sender; receiver: Receiver; replies: Map<number, Message> } | undefined;
  private nextCbsMessageId = 0;

  private constructor(
    readonly connection: Connection,
    readonly endpoint: CSdkEndpoint,
  ) {}

  /** Connects with SASL MSSBCBS, as iothubtransport_amqp_connection does for SAS devices. */
  static async open(endpoint: CSdkEndpoint): Promise<CSdkHubClient> {
    return new CSdkHubClient(await openConnection(endpoint, { mechanism: "MSSBCBS" }), endpoint);
  }

  /** "amqps://{hub}/devices/{deviceId}/{suffix}", the C SDK's link address. */
  address(deviceId: string, suffix: string): string {
    return `amqps://${this.endpoint.hostName}/devices/${deviceId}/${suffix}`;
  }

  /** put-token over $cbs with a ulong message-id; resolves with the reply's status-code. */
  async putToken(audience: string, token: string): Promise<number> {
    if (!this.cbs) {
      const replies = new Map<number, Message>();
      const receiver = await waitReceiverOpen(
        this.connection.open_receiver({
          name: "$cbs-receiver",
          source: { address: "$cbs" },
          target: { address: "$cbs" },
        }),
        "$cbs receiver",
      );
      receiver.on("message", (context: EventContext) => {
        const id = context.message?.correlation_id;
        if (typeof id === "number" && context.message) replies.set(id, context.message);
      });
      const sender = await waitSendable(
        this.connection.open_sender({
          name: "$cbs-sender",
          source: { address: "$cbs" },
          target: { address: "$cbs" },
        }),
        "$cbs sender",
      );
      this.cbs = { sender, receiver, replies };
    }
    const { sender, receiver, replies } = this.cbs;
    const messageId = this.nextCbsMessageId++;
    sender.send({
      message_id: messageId,
      application_properties: {
        operation: "put-token",
        type: "servicebus.windows.net:sastoken",
        name: audience,
      },
      body: token,
    });
    const reply = await within(
      new Promise<Message>((resolve) => {
        const check = (): void => {
          const found = replies.get(messageId);
          if (!found) return;
          receiver.off("message", check);
          resolve(found);
        };
        receiver.on("message", check);
        check();
      }),
      "CBS reply",
    );
    return Number((reply.application_properties as Record<string, unknown>)["status-code"]);
  }

  /** Attaches a sender link; resolves with it and the max-message-size the hub announced (0 when none). */
  async sender(
    address: string,
    properties: Record<string, unknown> = {},
  ): Promise<{ sender: Sender; peerMaxMessageSize: number }> {
    const sender = await waitSendable(
      this.connection.open_sender({
        name: `link-snd-${randomUUID()}`,
        target: { address },
        source: { address: `link-snd-source-${randomUUID()}` },
        max_message_size: Number.MAX_SAFE_INTEGER,
        properties,
      }),
      address,
    );
    return { sender, peerMaxMessageSize: remoteMaxMessageSize(sender) };
  }

  /** Attaches a receiver link; resolves with it and the max-message-size the hub announced. */
  async receiver(
    address: string,
    options: Record<string, unknown> = {},
  ): Promise<{ receiver: Receiver; peerMaxMessageSize: number }> {
    const receiver = await waitReceiverOpen(
      this.connection.open_receiver({
        name: `link-rcv-${randomUUID()}`,
        source: { address },
        target: { address: `link-rcv-target-${randomUUID()}` },
        max_message_size: 65536,
        autoaccept: false,
        ...options,
      }),
      address,
    );
    return { receiver, peerMaxMessageSize: remoteMaxMessageSize(receiver) };
  }

  /**
   * Sends telemetry the way the C SDK's telemetry messenger does: one batch transfer, after checking the hub
   * announced room for it beyond the batching reserve.
   */
  async sendBatch(sender: Sender, payload: Buffer): Promise<TransferOutcome> {
    const peerMax = remoteMaxMessageSize(sender);
    if (peerMax <= C_SDK_BATCHING_RESERVE) {
      throw new Error(
        `peer_max_message_size (${peerMax}) is less than the reserve size (${C_SDK_BATCHING_RESERVE})`,
      );
    }
    if (payload.length > peerMax - C_SDK_BATCHING_RESERVE)
      throw new Error("batch larger than the hub accepts");
    return this.sendRaw(sender, payload, C_SDK_BATCH_FORMAT);
  }

  /** Sends pre-encoded bytes with a message-format (for malformed batches the C SDK would never send). */
  sendRaw(sender: Sender, payload: Buffer, format: number): Promise<TransferOutcome> {
    return outcomeOf(sender.send(payload, undefined, format), sender);
  }

  close(): void {
    this.connection.close();
  }
}

function remoteMaxMessageSize(link: Sender | Receiver): number {
  const attach = (link as unknown as { remote: { attach?: { max_message_size?: unknown } } }).remote.attach;
  const value = attach?.max_message_size;
  return typeof value === "number" ? value : 0;
}
