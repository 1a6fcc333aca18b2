// Direct methods: the service's invokeMethod sends a request on the device's method receiver link and waits for
// the response on its method sender link (docs/hub-amqp-protocol.md §5.2; https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods).
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { string_to_uuid, type Message } from "rhea";
import { bodyBytes, dataSection, messageIdText } from "./amqp-body.js";
import { amqpMessage } from "./amqp-wire.js";
import type { DeviceConnections } from "./device-connections.js";
import { deviceKey, type DeviceStore } from "./device-store.js";
import { HubServiceError } from "./errors.js";
import { sendOnLink, type LinkState } from "./link-state.js";
import type { TimerSet } from "./timer-set.js";
import type { HubDeviceRecord, MethodRequest } from "./types.js";

/** Direct method limits (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods). */
const MethodLimits = {
  defaultResponseTimeoutS: 30,
  minResponseTimeoutS: 5,
  maxResponseTimeoutS: 300,
  maxConnectTimeoutS: 300,
  maxPayloadBytes: 128 * 1024,
} as const;

/** A transport other than AMQP links that carries method requests (MQTT); answers come back through `respond`. */
export interface MethodChannel {
  /** True when the device listens for method requests on this transport. */
  canInvoke(hubHostName: string, deviceId: string): boolean;
  send(hubHostName: string, deviceId: string, requestId: string, methodName: string, payload: Buffer): void;
}

type MethodTarget = { link: LinkState } | { channel: MethodChannel };

interface PendingMethod {
  hubHostName: string;
  deviceId: string;
  resolve(result: { status: number; payload: unknown }): void;
  reject(error: HubServiceError): void;
  timer: NodeJS.Timeout;
}

export class MethodInvoker {
  private readonly pendingMethods = new Map<string, PendingMethod>();
  /** Wakes invokeMethod calls that wait for a device's method link (connectTimeoutInSeconds). */
  private readonly methodLinkAttached = new EventEmitter();
  private closing = false;
  private readonly channels: MethodChannel[] = [];

  constructor(
    private readonly store: DeviceStore,
    private readonly connections: DeviceConnections,
    private readonly timers: TimerSet,
  ) {
    this.methodLinkAttached.setMaxListeners(0);
  }

  async invokeMethod(
    hubHostName: string,
    deviceId: string,
    request: MethodRequest,
  ): Promise<{ status: number; payload: unknown }> {
    const device = this.store.getOrThrow(hubHostName, deviceId);
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
    const target =
      this.methodTarget(device.hubHostName, deviceId) ??
      (await this.waitForMethodLink(device, connectTimeoutS));
    if (!target) {
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
      if ("channel" in target) {
        target.channel.send(device.hubHostName, deviceId, correlationId, request.methodName, payload);
        return;
      }
      // The service sends an AMQP uuid correlation id (0x98), §5.2.
      sendOnLink(
        target.link,
        amqpMessage({
          correlation_id: string_to_uuid(correlationId),
          application_properties: { "IoThub-methodname": request.methodName },
          body: dataSection(payload),
        }),
      );
    });
  }

  /** Method requests may also go out on `channel` (an AMQP link of the device is preferred). */
  addChannel(channel: MethodChannel): void {
    this.channels.push(channel);
  }

  /** A device attached its method receiver link (or subscribed to methods on another transport). */
  linkAttached(hubHostName: string, deviceId: string): void {
    this.methodLinkAttached.emit(deviceKey(hubHostName, deviceId));
  }

  /** The hub is closing: pending invocations fail, and those waiting for a link stop waiting. */
  close(): void {
    this.closing = true;
    for (const pending of this.pendingMethods.values()) {
      clearTimeout(pending.timer);
      pending.reject(new HubServiceError(503, "ServiceUnavailable", "The hub is shutting down."));
    }
    this.pendingMethods.clear();
    this.methodLinkAttached.emit("closing");
  }

  private methodRequestLink(hubHostName: string, deviceId: string): LinkState | undefined {
    for (const [state] of this.connections.authorizationsOf(hubHostName, deviceId)) {
      for (const link of state.links.values()) {
        if (link.role === "method-request" && link.deviceId === deviceId && link.link.is_open()) return link;
      }
    }
    return undefined;
  }

  private methodTarget(hubHostName: string, deviceId: string): MethodTarget | undefined {
    const link = this.methodRequestLink(hubHostName, deviceId);
    if (link) return { link };
    const channel = this.channels.find((candidate) => candidate.canInvoke(hubHostName, deviceId));
    return channel ? { channel } : undefined;
  }

  private waitForMethodLink(device: HubDeviceRecord, timeoutS: number): Promise<MethodTarget | undefined> {
    if (timeoutS <= 0 || this.closing) return Promise.resolve(undefined);
    const key = deviceKey(device.hubHostName, device.deviceId);
    return new Promise((resolve) => {
      const finish = (): void => {
        this.methodLinkAttached.off(key, finish);
        this.methodLinkAttached.off("closing", finish);
        this.timers.clear(timer);
        resolve(this.methodTarget(device.hubHostName, device.deviceId));
      };
      const timer = this.timers.set(finish, timeoutS * 1000);
      this.methodLinkAttached.on(key, finish);
      this.methodLinkAttached.on("closing", finish);
    });
  }

  /** The device answered on its method sender link. */
  onMethodResponse(message: Message): void {
    const correlationId = messageIdText(message.correlation_id);
    const statusValue = (message.application_properties as Record<string, unknown> | undefined)?.[
      "IoThub-status"
    ];
    const status = typeof statusValue === "number" ? statusValue : Number(statusValue);
    if (correlationId) this.respond(correlationId, status, bodyBytes(message.body));
  }

  /** The device answered request `requestId` with `status` and a JSON (or text) body; `from` = who answered. */
  respond(
    requestId: string,
    status: number,
    body: Buffer,
    from?: { hubHostName: string; deviceId: string },
  ): void {
    const pending = this.pendingMethods.get(requestId);
    if (!pending) return;
    // A device answers only the requests made to it.
    if (from && (from.deviceId !== pending.deviceId || from.hubHostName !== pending.hubHostName)) return;
    this.pendingMethods.delete(requestId);
    clearTimeout(pending.timer);
    const text = body.toString("utf8");
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
}
