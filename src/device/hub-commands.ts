// Direct methods and cloud-to-device messages on one hub connection, through the azure-iot-device Client's own
// API (onDeviceMethod, the 'message' event, complete / abandon / reject), so they work the same on every SDK
// transport (docs/methods-and-c2d.md §1). Only the catch-all for method names nobody registered reaches below
// the Client (method-catch-all.ts). Everything added here is removed by release().
import { DeviceMethodRequest, DeviceMethodResponse, type Client, type Message } from "azure-iot-device";
import type { C2dOutcome, IncomingCloudMessage } from "./c2d-inbox.js";
import { HubError } from "./errors.js";
import {
  interceptUnhandledMethods,
  methodEmitterOf,
  type TransportMethodRequest,
} from "./method-catch-all.js";
import { MethodStatus, type IncomingMethodCall } from "./method-dispatcher.js";

type DeviceTransport = Client["_transport"];

export interface HubCommandsListener {
  method(call: IncomingMethodCall): void;
  cloudMessage(message: IncomingCloudMessage): void;
  /** False once the connection is lost or closing: answers and settlements are refused then. */
  usable(): boolean;
}

export class HubCommands {
  private readonly methodNames = new Set<string>();
  private restoreMethodEmit: (() => void) | undefined;
  /** The one attach of the method links on this connection. */
  private methodLinks: Promise<void> | undefined;
  private readonly onMessage = (message: Message): void => this.listener.cloudMessage(this.incoming(message));
  private receiving: "off" | "on" = "off";

  constructor(
    private readonly client: Client,
    private readonly transport: DeviceTransport,
    private readonly listener: HubCommandsListener,
  ) {}

  /**
   * Attaches the method links once, then registers each new name with the SDK and installs the catch-all.
   * Names are registered after the attach: Client.onDeviceMethod attaches too, and the AMQP method client
   * drops an attach asked for while one is under way (its callback never comes).
   */
  async enableMethods(names: readonly string[]): Promise<void> {
    this.methodLinks ??= new Promise<void>((resolve, reject) =>
      this.transport.enableMethods((error) => (error ? reject(error) : resolve())),
    ).catch((error: unknown) => {
      this.methodLinks = undefined;
      throw error;
    });
    await this.methodLinks;
    if (!this.restoreMethodEmit) {
      const emitter = methodEmitterOf(this.transport);
      if (emitter)
        this.restoreMethodEmit = interceptUnhandledMethods(emitter, (request) => this.unhandled(request));
    }
    for (const name of names) {
      if (this.methodNames.has(name)) continue;
      this.methodNames.add(name);
      this.client.onDeviceMethod(name, (request, response) =>
        this.listener.method(this.call(request.requestId, request.methodName, request.payload, response)),
      );
    }
  }

  /** A listener on the Client's 'message' event attaches the C2D link (once per connection). */
  receiveCloudMessages(): void {
    if (this.receiving === "on") return;
    this.receiving = "on";
    this.client.on("message", this.onMessage);
  }

  release(): void {
    this.restoreMethodEmit?.();
    this.restoreMethodEmit = undefined;
    this.client.removeListener("message", this.onMessage);
    this.receiving = "off";
  }

  /** A call the SDK would drop (no listener for its name): built as Client.onDeviceMethod builds it. */
  private unhandled(request: TransportMethodRequest): void {
    const requestId = request.requestId;
    const methodName = request.methods?.methodName;
    // Without a request id no answer can be addressed; the service times the call out.
    if (typeof requestId !== "string" || requestId.length === 0 || typeof methodName !== "string") return;
    const response = new DeviceMethodResponse(requestId, this.transport);
    let parsed: DeviceMethodRequest;
    try {
      parsed = new DeviceMethodRequest(requestId, methodName, request.body);
    } catch (error) {
      // What the SDK answers for a body that is not JSON.
      response
        .send(MethodStatus.badRequest, `Invalid request format: ${(error as Error).message}`)
        .catch(() => undefined);
      return;
    }
    this.listener.method(this.call(parsed.requestId, parsed.methodName, parsed.payload, response));
  }

  private call(
    requestId: string,
    methodName: string,
    payload: unknown,
    response: DeviceMethodResponse,
  ): IncomingMethodCall {
    return {
      requestId,
      methodName,
      payload,
      respond: async (status, answer) => {
        if (!this.listener.usable()) {
          throw new HubError(
            `method "${methodName}" cannot be answered: the connection it came on is gone`,
            "",
          );
        }
        await response.send(status, answer);
      },
    };
  }

  private incoming(message: Message): IncomingCloudMessage {
    const properties: Record<string, string> = {};
    const count = message.properties?.count() ?? 0;
    for (let index = 0; index < count; index += 1) {
      const item = message.properties.getItem(index);
      if (item) properties[item.key] = String(item.value);
    }
    const expiry = message.expiryTimeUtc as unknown;
    const expiryTimeUtc =
      expiry instanceof Date || typeof expiry === "number"
        ? new Date(expiry).toISOString()
        : typeof expiry === "string" && expiry.length > 0
          ? expiry
          : undefined;
    return {
      body: bodyOf(message),
      properties,
      ...(message.contentType ? { contentType: message.contentType } : {}),
      ...(message.contentEncoding ? { contentEncoding: message.contentEncoding } : {}),
      ...(message.messageId ? { messageId: String(message.messageId) } : {}),
      ...(message.correlationId ? { correlationId: String(message.correlationId) } : {}),
      ...(expiryTimeUtc ? { expiryTimeUtc } : {}),
      settle: (outcome) => this.settle(message, outcome),
    };
  }

  private async settle(message: Message, outcome: C2dOutcome): Promise<void> {
    if (!this.listener.usable()) {
      throw new HubError(
        `the cloud-to-device message cannot be settled (${outcome}): the connection it came on is gone; the hub delivers it again`,
        "",
      );
    }
    // MQTT's abandon and reject throw (MQTT has no such settlement): a rejection here, not a throw.
    switch (outcome) {
      case "complete":
        await this.client.complete(message);
        return;
      case "abandon":
        await this.client.abandon(message);
        return;
      case "reject":
        await this.client.reject(message);
        return;
    }
  }
}

function bodyOf(message: Message): Buffer {
  const data = message.getData() as unknown;
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (data instanceof Uint8Array) return Buffer.from(data);
  return Buffer.alloc(0);
}
