// Devices and their twins, keyed by (hub host name, device id), persisted to an optional JSON file.
// The store only keeps state; side effects on live connections belong to the caller.
import { randomInt } from "node:crypto";
import { readJsonFile, writeJsonAtomically } from "./atomic-json-file.js";
import { normalizeDeviceRecord } from "./device-identity.js";
import { HubServiceError } from "./errors.js";
import {
  checkSectionLimits,
  cloneJson,
  isJsonObject,
  mergePatch,
  TwinRuleViolation,
  twinEtag,
  validateTwinSection,
  withoutSystemKeys,
  type JsonObject,
} from "./twin-rules.js";
import type { HubDeviceRecord, TwinDocument, TwinSeed } from "./types.js";

interface TwinState {
  tags: JsonObject;
  desired: JsonObject;
  reported: JsonObject;
  desiredVersion: number;
  reportedVersion: number;
  /** The whole twin's version; the etag derives from it. */
  version: number;
}

interface StoredDevice {
  record: HubDeviceRecord;
  twin: TwinState;
  /** Changes when a device is recreated (iothub-connection-auth-generation-id). */
  generationId: string;
}

interface PersistedRegistry {
  format: typeof FILE_FORMAT;
  devices: StoredDevice[];
}

const FILE_FORMAT = "provisio-hub-registry/1";

/** The device-facing twin shape of an AMQP GET (docs/hub-amqp-protocol.md §4.3, obligation 4). */
export interface DeviceTwinView {
  desired: JsonObject & { $version: number };
  reported: JsonObject & { $version: number };
}

/** A desired-properties change to push to the device, with its new $version. */
export interface DesiredChange {
  patch: JsonObject;
  version: number;
}

export function deviceKey(hubHostName: string, deviceId: string): string {
  return `${hubHostName.toLowerCase()}/${deviceId}`;
}

function newTwin(): TwinState {
  return { tags: {}, desired: {}, reported: {}, desiredVersion: 1, reportedVersion: 1, version: 1 };
}

function asArgumentError(error: unknown): never {
  if (error instanceof TwinRuleViolation) throw new HubServiceError(400, "ArgumentInvalid", error.message);
  throw error;
}

/** Longest time a change waits before the registry file is written, unless the store is told otherwise. */
const SAVE_EVERY_MS = 25;

export class DeviceStore {
  private readonly devices = new Map<string, StoredDevice>();
  private saveScheduled = false;
  /** The last persistence failure, for diagnostics; writes are retried on the next change. */
  lastSaveError: Error | undefined;

  constructor(
    private readonly dataFile?: string,
    private readonly saveEveryMs = SAVE_EVERY_MS,
  ) {}

  /** Reads the data file (if any). A corrupt file is an error: starting empty would lose the registry. */
  load(): void {
    if (!this.dataFile) return;
    const content = readJsonFile(this.dataFile);
    if (content === undefined) return;
    if (!isJsonObject(content) || content.format !== FILE_FORMAT || !Array.isArray(content.devices)) {
      throw new Error(`hub data file ${this.dataFile} is not a ${FILE_FORMAT} document`);
    }
    for (const stored of (content as unknown as PersistedRegistry).devices) {
      const record = normalizeDeviceRecord(stored.record);
      this.devices.set(deviceKey(record.hubHostName, record.deviceId), { ...stored, record });
    }
  }

  get(hubHostName: string, deviceId: string): HubDeviceRecord | undefined {
    const stored = this.devices.get(deviceKey(hubHostName, deviceId));
    return stored ? cloneJson(stored.record) : undefined;
  }

  /** Like get(), but a missing device is a 404 DeviceNotFound service error. */
  getOrThrow(hubHostName: string, deviceId: string): HubDeviceRecord {
    return cloneJson(this.require(hubHostName, deviceId).record);
  }

  generationId(hubHostName: string, deviceId: string): string | undefined {
    return this.devices.get(deviceKey(hubHostName, deviceId))?.generationId;
  }

  list(hubHostName?: string): HubDeviceRecord[] {
    const hub = hubHostName?.toLowerCase();
    return [...this.devices.values()]
      .filter((stored) => hub === undefined || stored.record.hubHostName.toLowerCase() === hub)
      .map((stored) => cloneJson(stored.record));
  }

  /** Devices with this id in any of the given hubs (X.509 connections name no hub). */
  findById(deviceId: string): HubDeviceRecord[] {
    return [...this.devices.values()]
      .filter((stored) => stored.record.deviceId === deviceId)
      .map((stored) => cloneJson(stored.record));
  }

  /** Creates or updates a device; with a seed, tags and desired are replaced. Returns a desired change to push. */
  upsert(device: HubDeviceRecord, seed?: TwinSeed): DesiredChange | undefined {
    const record = normalizeDeviceRecord(device);
    const key = deviceKey(record.hubHostName, record.deviceId);
    const existing = this.devices.get(key);
    const stored: StoredDevice = existing
      ? { ...existing, record }
      : { record, twin: newTwin(), generationId: String(randomInt(2 ** 47)) };
    let change: DesiredChange | undefined;
    if (seed) {
      const next = this.replacedTwin(stored.twin, seed);
      if (existing) change = this.desiredChange(stored.twin, next);
      // A new device's twin starts at version 1 whatever it was seeded with.
      stored.twin = existing ? next : { ...next, desiredVersion: 1, version: 1 };
    }
    this.devices.set(key, stored);
    this.changed();
    return change;
  }

  delete(hubHostName: string, deviceId: string): boolean {
    const removed = this.devices.delete(deviceKey(hubHostName, deviceId));
    if (removed) this.changed();
    return removed;
  }

  setStatus(hubHostName: string, deviceId: string, status: "enabled" | "disabled"): void {
    const stored = this.require(hubHostName, deviceId);
    if (status !== "enabled" && status !== "disabled") {
      throw new HubServiceError(400, "ArgumentInvalid", "status must be enabled or disabled.");
    }
    stored.record = { ...stored.record, status };
    this.changed();
  }

  twinDocument(hubHostName: string, deviceId: string): TwinDocument | undefined {
    const stored = this.devices.get(deviceKey(hubHostName, deviceId));
    return stored ? this.document(stored) : undefined;
  }

  deviceTwinView(hubHostName: string, deviceId: string): DeviceTwinView {
    const { twin } = this.require(hubHostName, deviceId);
    return {
      desired: { ...cloneJson(twin.desired), $version: twin.desiredVersion },
      reported: { ...cloneJson(twin.reported), $version: twin.reportedVersion },
    };
  }

  /** Service-side merge patch of tags and desired properties. */
  updateTwin(
    hubHostName: string,
    deviceId: string,
    patch: TwinSeed,
    ifMatch?: string,
  ): { document: TwinDocument; change?: DesiredChange } {
    const stored = this.require(hubHostName, deviceId);
    this.checkEtag(stored, ifMatch);
    const next = { ...stored.twin };
    try {
      if (patch.tags !== undefined) {
        if (!isJsonObject(patch.tags)) throw new TwinRuleViolation("tags must be a JSON object.");
        validateTwinSection(patch.tags, true);
        next.tags = mergePatch(stored.twin.tags, patch.tags);
        checkSectionLimits(next.tags, "tags");
      }
      const desired = patch.properties?.desired;
      if (desired !== undefined) {
        if (!isJsonObject(desired)) throw new TwinRuleViolation("desired properties must be a JSON object.");
        validateTwinSection(desired, true);
        next.desired = mergePatch(stored.twin.desired, desired);
        checkSectionLimits(next.desired, "desired");
      }
    } catch (error) {
      asArgumentError(error);
    }
    let change: DesiredChange | undefined;
    const desiredPatch = patch.properties?.desired;
    if (desiredPatch !== undefined) {
      next.desiredVersion = stored.twin.desiredVersion + 1;
      change = { patch: withoutVersionKeys(desiredPatch), version: next.desiredVersion };
    }
    next.version = stored.twin.version + 1;
    stored.twin = next;
    this.changed();
    return { document: this.document(stored), ...(change ? { change } : {}) };
  }

  /** Service-side replacement of tags and desired properties. */
  replaceTwin(
    hubHostName: string,
    deviceId: string,
    seed: TwinSeed,
    ifMatch?: string,
  ): { document: TwinDocument; change?: DesiredChange } {
    const stored = this.require(hubHostName, deviceId);
    this.checkEtag(stored, ifMatch);
    const next = this.replacedTwin(stored.twin, seed);
    const change = this.desiredChange(stored.twin, next);
    stored.twin = next;
    this.changed();
    return { document: this.document(stored), ...(change ? { change } : {}) };
  }

  /** Device-side PATCH of reported properties; returns the new reported $version. Throws TwinRuleViolation. */
  patchReported(hubHostName: string, deviceId: string, patch: unknown): number {
    const stored = this.require(hubHostName, deviceId);
    if (!isJsonObject(patch)) throw new TwinRuleViolation("Reported properties patch must be a JSON object.");
    validateTwinSection(patch);
    const reported = mergePatch(stored.twin.reported, patch);
    checkSectionLimits(reported, "reported");
    stored.twin = {
      ...stored.twin,
      reported,
      reportedVersion: stored.twin.reportedVersion + 1,
      version: stored.twin.version + 1,
    };
    this.changed();
    return stored.twin.reportedVersion;
  }

  /** Writes pending changes now (used at close). */
  flush(): void {
    if (!this.dataFile) return;
    this.saveScheduled = false;
    const content: PersistedRegistry = { format: FILE_FORMAT, devices: [...this.devices.values()] };
    try {
      writeJsonAtomically(this.dataFile, content);
      this.lastSaveError = undefined;
    } catch (error) {
      this.lastSaveError = error instanceof Error ? error : new Error(String(error));
    }
  }

  private replacedTwin(current: TwinState, seed: TwinSeed): TwinState {
    const next = { ...current };
    try {
      const tags = seed.tags ?? {};
      const desired = seed.properties?.desired ?? {};
      if (!isJsonObject(tags)) throw new TwinRuleViolation("tags must be a JSON object.");
      if (!isJsonObject(desired)) throw new TwinRuleViolation("desired properties must be a JSON object.");
      validateTwinSection(tags, true);
      validateTwinSection(desired, true);
      next.tags = withoutSystemKeys(tags);
      next.desired = withoutSystemKeys(desired);
      checkSectionLimits(next.tags, "tags");
      checkSectionLimits(next.desired, "desired");
    } catch (error) {
      asArgumentError(error);
    }
    next.desiredVersion = current.desiredVersion + 1;
    next.version = current.version + 1;
    return next;
  }

  /** A replacement is pushed as the whole new desired document (removed keys as null, so the SDK's merge drops them). */
  private desiredChange(before: TwinState, after: TwinState): DesiredChange | undefined {
    if (after.desiredVersion === before.desiredVersion) return undefined;
    const patch: JsonObject = cloneJson(after.desired);
    for (const key of Object.keys(before.desired)) if (!(key in after.desired)) patch[key] = null;
    return { patch, version: after.desiredVersion };
  }

  private checkEtag(stored: StoredDevice, ifMatch: string | undefined): void {
    if (ifMatch === undefined || ifMatch === "*") return;
    const expected = twinEtag(stored.twin.version);
    if (ifMatch.replace(/^W\//, "").replace(/"/g, "") !== expected) {
      throw new HubServiceError(
        412,
        "PreconditionFailed",
        `Precondition failed: twin etag is "${expected}".`,
      );
    }
  }

  private require(hubHostName: string, deviceId: string): StoredDevice {
    const stored = this.devices.get(deviceKey(hubHostName, deviceId));
    if (!stored)
      throw new HubServiceError(404, "DeviceNotFound", `Device ${deviceId} not found on ${hubHostName}.`);
    return stored;
  }

  private document(stored: StoredDevice): TwinDocument {
    const { record, twin } = stored;
    return {
      deviceId: record.deviceId,
      etag: twinEtag(twin.version),
      version: twin.version,
      status: record.status,
      ...(record.modelId !== undefined ? { modelId: record.modelId } : {}),
      tags: cloneJson(twin.tags),
      properties: {
        desired: { ...cloneJson(twin.desired), $version: twin.desiredVersion },
        reported: { ...cloneJson(twin.reported), $version: twin.reportedVersion },
      },
    };
  }

  /**
   * Changes are written at most once per `saveEveryMs`: a device reporting properties hundreds of times a second
   * would otherwise rewrite the whole registry file (and rename it) as often, which then bounds the hub's
   * answers; close() writes what is pending.
   */
  private changed(): void {
    if (!this.dataFile || this.saveScheduled) return;
    this.saveScheduled = true;
    setTimeout(() => {
      if (this.saveScheduled) this.flush();
    }, this.saveEveryMs).unref();
  }
}

function withoutVersionKeys(patch: JsonObject): JsonObject {
  const copy = cloneJson(patch);
  delete copy.$version;
  delete copy.$metadata;
  return copy;
}
