// The part of the IoT Hub emulator's contract (src/emulator/hub/index.ts: HubRegistry, HubService) that DPS
// uses. Declared structurally so the DPS module does not depend on the hub module's implementation; the hub's
// real registry and service satisfy these types as they are.

export interface DpsHubDeviceRecord {
  hubHostName: string;
  deviceId: string;
  status: "enabled" | "disabled";
  authentication:
    | { type: "sas"; symmetricKey: { primaryKey: string; secondaryKey?: string } }
    | { type: "selfSigned"; x509Thumbprint: { primaryThumbprint: string; secondaryThumbprint?: string } }
    | { type: "certificateAuthority" };
  modelId?: string;
}

export interface DpsTwinSeed {
  tags?: Record<string, unknown>;
  properties?: { desired?: Record<string, unknown> };
}

export interface DpsHubRegistry {
  upsertDevice(device: DpsHubDeviceRecord, twin?: DpsTwinSeed): void;
  getDevice(hubHostName: string, deviceId: string): DpsHubDeviceRecord | undefined;
  deleteDevice(hubHostName: string, deviceId: string): boolean;
}

export interface DpsHubService {
  getTwin(
    hubHostName: string,
    deviceId: string,
  ):
    | {
        tags: Record<string, unknown>;
        properties: { desired: Record<string, unknown> };
      }
    | undefined;
}

/** An IoT hub linked to this DPS instance (Azure: "linked IoT hubs" with allocation weight). */
export interface LinkedHub {
  hostName: string;
  /** Weight for evenly weighted (hashed) allocation. Default 1; 0 takes no new devices. */
  allocationWeight?: number;
  /** false: only enrollments that name this hub explicitly use it. Default true. */
  applyAllocationPolicy?: boolean;
  /** Emulated round-trip latency for the lowest-latency (geoLatency) policy. Default 0. */
  latencyMs?: number;
}

export interface DpsHubs {
  registry: DpsHubRegistry;
  /** Needed to migrate device twins when reprovisioning (migrateDeviceData). */
  service?: DpsHubService;
  linkedHubs: LinkedHub[];
}
