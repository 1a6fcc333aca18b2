// Assembles the emulated IoT Hub: device store, AMQP endpoint, and the registry / service / faults facades.
import { EventEmitter } from "node:events";
import { AmqpEndpoint } from "./amqp-endpoint.js";
import { DeviceStore } from "./device-store.js";
import type { HubEndpoint } from "./device-transports.js";
import { HubServiceError } from "./errors.js";
import { startExtraTransports } from "./extra-transports.js";
import { TelemetryLog } from "./telemetry.js";
import type {
  CloudToDeviceMessage,
  DeviceStatus,
  FaultLink,
  Hub,
  HubDeviceRecord,
  HubFaults,
  HubOptions,
  HubRegistry,
  HubService,
  MethodRequest,
  TelemetryRecord,
  TwinDocument,
  TwinSeed,
} from "./types.js";

class Registry implements HubRegistry {
  constructor(
    private readonly store: DeviceStore,
    private readonly endpoint: HubEndpoint,
    private readonly hostNames: readonly string[],
  ) {}

  upsertDevice(device: HubDeviceRecord, twin?: TwinSeed): void {
    if (!this.hostNames.some((name) => name.toLowerCase() === device.hubHostName?.toLowerCase())) {
      throw new HubServiceError(
        400,
        "ArgumentInvalid",
        `${device.hubHostName} is not served by this hub listener.`,
      );
    }
    const before = this.store.get(device.hubHostName, device.deviceId);
    const change = this.store.upsert(device, twin);
    const after = this.store.get(device.hubHostName, device.deviceId);
    if (after?.status === "disabled") {
      this.endpoint.disconnectDevice(
        device.hubHostName,
        device.deviceId,
        `Device ${device.deviceId} is disabled.`,
      );
    } else if (before && JSON.stringify(before.authentication) !== JSON.stringify(after?.authentication)) {
      // New credentials end sessions opened with the old ones.
      this.endpoint.disconnectDevice(device.hubHostName, device.deviceId, "The device credentials changed.");
    } else if (change) {
      this.endpoint.pushDesired(device.hubHostName, device.deviceId, change);
    }
  }

  getDevice(hubHostName: string, deviceId: string): HubDeviceRecord | undefined {
    return this.store.get(hubHostName, deviceId);
  }

  listDevices(hubHostName?: string): HubDeviceRecord[] {
    return this.store.list(hubHostName);
  }

  deleteDevice(hubHostName: string, deviceId: string): boolean {
    const removed = this.store.delete(hubHostName, deviceId);
    if (removed) this.endpoint.disconnectDevice(hubHostName, deviceId, `Device ${deviceId} was deleted.`);
    return removed;
  }

  setStatus(hubHostName: string, deviceId: string, status: DeviceStatus): void {
    this.store.setStatus(hubHostName, deviceId, status);
    if (status === "disabled") {
      this.endpoint.disconnectDevice(hubHostName, deviceId, `Device ${deviceId} is disabled.`);
    }
  }
}

class Service extends EventEmitter implements HubService {
  private endpoint!: HubEndpoint;

  constructor(
    private readonly store: DeviceStore,
    private readonly telemetry: TelemetryLog,
  ) {
    super();
  }

  attach(endpoint: HubEndpoint): void {
    this.endpoint = endpoint;
  }

  getTwin(hubHostName: string, deviceId: string): TwinDocument | undefined {
    return this.store.twinDocument(hubHostName, deviceId);
  }

  updateTwin(hubHostName: string, deviceId: string, patch: TwinSeed, ifMatch?: string): TwinDocument {
    const { document, change } = this.store.updateTwin(hubHostName, deviceId, patch, ifMatch);
    if (change) this.endpoint.pushDesired(hubHostName, deviceId, change);
    return document;
  }

  replaceTwin(hubHostName: string, deviceId: string, twin: TwinSeed, ifMatch?: string): TwinDocument {
    const { document, change } = this.store.replaceTwin(hubHostName, deviceId, twin, ifMatch);
    if (change) this.endpoint.pushDesired(hubHostName, deviceId, change);
    return document;
  }

  invokeMethod(
    hubHostName: string,
    deviceId: string,
    request: MethodRequest,
  ): Promise<{ status: number; payload: unknown }> {
    return this.endpoint.invokeMethod(hubHostName, deviceId, request);
  }

  sendCloudToDevice(hubHostName: string, deviceId: string, message: CloudToDeviceMessage): void {
    this.endpoint.sendCloudToDevice(hubHostName, deviceId, message);
  }

  recentTelemetry(hubHostName: string, deviceId?: string, limit?: number): TelemetryRecord[] {
    return this.telemetry.recent(hubHostName, deviceId, limit);
  }

  isConnected(hubHostName: string, deviceId: string): boolean {
    return this.endpoint.isConnected(hubHostName, deviceId);
  }

  connectionCount(): number {
    return this.endpoint.connectionCount();
  }
}

class Faults implements HubFaults {
  constructor(private readonly endpoint: HubEndpoint) {}

  dropConnection(hubHostName: string, deviceId: string): boolean {
    return this.endpoint.dropConnection(hubHostName, deviceId);
  }

  detachLink(hubHostName: string, deviceId: string, link: FaultLink): boolean {
    return this.endpoint.detachLink(hubHostName, deviceId, link);
  }

  rejectNextTokens(count: number): void {
    this.endpoint.rejectNextTokens(count);
  }

  throttleNext(count: number): void {
    this.endpoint.throttleNext(count);
  }

  exceedQuotaNext(count: number): void {
    this.endpoint.exceedQuotaNext(count);
  }

  throttleTwinGetsNext(count: number): void {
    this.endpoint.throttleTwinGetsNext(count);
  }

  delayAcks(ms: number): void {
    this.endpoint.delayAcks(ms);
  }
}

/** The C2D queues live next to the device file: "hub-registry.json" -> "hub-registry.c2d.json". */
export function c2dFileBeside(dataFile: string): string {
  return `${dataFile.replace(/\.json$/i, "")}.c2d.json`;
}

/** Starts a hub listening on TLS; devices, twins and C2D queues are reloaded from `dataFile` when it exists. */
export async function startHub(options: HubOptions): Promise<Hub> {
  if (!Array.isArray(options.hostNames) || options.hostNames.length === 0) {
    throw new HubServiceError(400, "ArgumentInvalid", "hostNames must name at least one hub.");
  }
  const store = new DeviceStore(options.dataFile);
  store.load();
  const telemetry = new TelemetryLog();
  const service = new Service(store, telemetry);
  const host = options.host ?? "127.0.0.1";
  const endpoint = new AmqpEndpoint(
    {
      host,
      port: options.port ?? 0,
      tls: options.tls,
      hostNames: [...options.hostNames],
      ...(options.servicePolicies ? { servicePolicies: options.servicePolicies } : {}),
      ...(options.dataFile ? { c2dFile: c2dFileBeside(options.dataFile) } : {}),
      ...(options.c2dLockTimeoutMs !== undefined ? { c2dLockTimeoutMs: options.c2dLockTimeoutMs } : {}),
    },
    store,
    telemetry,
    service,
  );
  await endpoint.listen();
  const extra = await startExtraTransports(
    endpoint,
    { store, telemetry, events: service },
    { ...options, host },
  ).catch(async (error: unknown) => {
    await endpoint.close();
    throw error;
  });
  service.attach(extra.transports);
  let closed: Promise<void> | undefined;
  return {
    host,
    port: endpoint.boundPort,
    ...(extra.mqttPort !== undefined ? { mqttPort: extra.mqttPort } : {}),
    ...(extra.httpsPort !== undefined ? { httpsPort: extra.httpsPort } : {}),
    registry: new Registry(store, extra.transports, options.hostNames),
    service,
    faults: new Faults(extra.transports),
    close: () => {
      closed ??= extra
        .close()
        .then(() => endpoint.close())
        .then(() => store.flush());
      return closed;
    },
  };
}
