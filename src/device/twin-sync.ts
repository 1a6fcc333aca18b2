// The twin beside the lifecycle: after every connect, subscribe to desired-property patches and then GET
// the full twin, so a change made between the two arrives as a patch and patches not newer than the GET are
// dropped (the SDK never GETs again after a reconnect, docs/hub-amqp-protocol.md §4.5).
import { withDeadline } from "./deadline.js";
import type { HubLink, TwinDocument } from "./hub-connection.js";

export interface TwinSyncListener {
  /** The full desired document (incl. $version) after a (re)connect. */
  twin(desired: Record<string, unknown>): void;
  /** A desired patch newer than anything seen so far. */
  desired(patch: Record<string, unknown>): void;
}

export class TwinSync {
  private desiredVersion: number | undefined;
  /** Patches that arrive while the twin is being fetched; replayed once it is in. */
  private buffered: Array<Record<string, unknown>> | undefined;
  private fetched: TwinDocument | undefined;

  constructor(private readonly listener: TwinSyncListener) {}

  /** Subscribes and fetches on a fresh link; resolves with the twin once it is in (not yet announced). */
  async sync(link: HubLink, timeoutMs: number, signal: AbortSignal): Promise<TwinDocument> {
    this.buffered = [];
    this.fetched = undefined;
    const deadline = Date.now() + timeoutMs;
    try {
      await withDeadline(link.enableDesiredUpdates(), "desired properties subscribe", timeoutMs, signal);
      this.fetched = await withDeadline(
        link.getTwin(),
        "twin GET",
        Math.max(1, deadline - Date.now()),
        signal,
      );
      return this.fetched;
    } catch (error) {
      this.buffered = undefined;
      throw error;
    }
  }

  /** Announces the fetched twin and then the patches that came in meanwhile (the session is connected). */
  announce(): void {
    const twin = this.fetched;
    const buffered = this.buffered ?? [];
    this.fetched = undefined;
    this.buffered = undefined;
    if (!twin) return;
    this.desiredVersion = versionOf(twin.desired);
    this.listener.twin(twin.desired);
    for (const patch of buffered) this.onDesired(patch);
  }

  /** A desired patch from the hub: buffered during a sync, dropped when not newer than what we have. */
  onDesired(patch: Record<string, unknown>): void {
    if (this.buffered) {
      this.buffered.push(patch);
      return;
    }
    const version = versionOf(patch);
    if (version !== undefined && this.desiredVersion !== undefined && version <= this.desiredVersion) return;
    if (version !== undefined) this.desiredVersion = version;
    this.listener.desired(patch);
  }
}

function versionOf(section: Record<string, unknown>): number | undefined {
  const version = section.$version;
  return typeof version === "number" ? version : undefined;
}
