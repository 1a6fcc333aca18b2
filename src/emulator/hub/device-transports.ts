// The device-facing transports of the emulated hub behind one face: the registry, service and fault facades
// reach a device however it is connected (AMQP, MQTT, or both at once).
import type { AmqpEndpoint } from "./amqp-endpoint.js";
import type { DesiredChange } from "./device-store.js";
import type { CloudToDeviceMessage, FaultLink, MethodRequest } from "./types.js";

/** What a transport other than AMQP offers the hub (MQTT sessions; HTTPS has no standing connection). */
export interface DeviceTransport {
  isConnected(hubHostName: string, deviceId: string): boolean;
  connectionCount(): number;
  disconnectDevice(hubHostName: string, deviceId: string, description: string): void;
  pushDesired(hubHostName: string, deviceId: string, change: DesiredChange): void;
  dropConnection(hubHostName: string, deviceId: string): boolean;
}

/** The AMQP endpoint's service-side surface, fanned out over every transport. */
export type HubEndpoint = Pick<
  AmqpEndpoint,
  | "isConnected"
  | "connectionCount"
  | "disconnectDevice"
  | "pushDesired"
  | "sendCloudToDevice"
  | "invokeMethod"
  | "dropConnection"
  | "detachLink"
  | "rejectNextTokens"
  | "throttleNext"
  | "exceedQuotaNext"
  | "throttleTwinGetsNext"
  | "delayAcks"
>;

export class DeviceTransports implements HubEndpoint {
  private readonly others: DeviceTransport[] = [];

  constructor(private readonly amqp: AmqpEndpoint) {}

  add(transport: DeviceTransport): void {
    this.others.push(transport);
  }

  isConnected(hubHostName: string, deviceId: string): boolean {
    return (
      this.amqp.isConnected(hubHostName, deviceId) ||
      this.others.some((transport) => transport.isConnected(hubHostName, deviceId))
    );
  }

  connectionCount(): number {
    return this.others.reduce(
      (sum, transport) => sum + transport.connectionCount(),
      this.amqp.connectionCount(),
    );
  }

  disconnectDevice(hubHostName: string, deviceId: string, description: string): void {
    this.amqp.disconnectDevice(hubHostName, deviceId, description);
    for (const transport of this.others) transport.disconnectDevice(hubHostName, deviceId, description);
  }

  pushDesired(hubHostName: string, deviceId: string, change: DesiredChange): void {
    this.amqp.pushDesired(hubHostName, deviceId, change);
    for (const transport of this.others) transport.pushDesired(hubHostName, deviceId, change);
  }

  /** One queue per device: whichever transport the device listens on takes the message. */
  sendCloudToDevice(hubHostName: string, deviceId: string, message: CloudToDeviceMessage): void {
    this.amqp.sendCloudToDevice(hubHostName, deviceId, message);
  }

  /** The AMQP method link is preferred; other transports are reached through the invoker's channels. */
  invokeMethod(
    hubHostName: string,
    deviceId: string,
    request: MethodRequest,
  ): Promise<{ status: number; payload: unknown }> {
    return this.amqp.invokeMethod(hubHostName, deviceId, request);
  }

  dropConnection(hubHostName: string, deviceId: string): boolean {
    let dropped = this.amqp.dropConnection(hubHostName, deviceId);
    for (const transport of this.others) dropped = transport.dropConnection(hubHostName, deviceId) || dropped;
    return dropped;
  }

  /** Links are AMQP's: the other transports have none to detach. */
  detachLink(hubHostName: string, deviceId: string, link: FaultLink): boolean {
    return this.amqp.detachLink(hubHostName, deviceId, link);
  }

  rejectNextTokens(count: number): void {
    this.amqp.rejectNextTokens(count);
  }

  throttleNext(count: number): void {
    this.amqp.throttleNext(count);
  }

  exceedQuotaNext(count: number): void {
    this.amqp.exceedQuotaNext(count);
  }

  /** One count for AMQP and MQTT: both read the same fault switches. */
  throttleTwinGetsNext(count: number): void {
    this.amqp.throttleTwinGetsNext(count);
  }

  delayAcks(ms: number): void {
    this.amqp.delayAcks(ms);
  }
}
