// Fault injection for tests (HubFaults): dropped connections, detached links, rejected tokens, throttled
// or over-quota telemetry, throttled twin reads and delayed acknowledgements.
import { closeLink, Condition, destroySocket } from "./amqp-wire.js";
import type { DeviceConnections } from "./device-connections.js";
import type { LinkRole } from "./link-state.js";
import type { FaultLink } from "./types.js";

export class FaultInjection {
  private tokensToReject = 0;
  private telemetryToThrottle = 0;
  private telemetryOverQuota = 0;
  private twinGetsToThrottle = 0;
  private ackDelay = 0;

  constructor(private readonly connections: DeviceConnections) {}

  dropConnection(hubHostName: string, deviceId: string): boolean {
    const states = this.connections.authorizationsOf(hubHostName, deviceId).map(([state]) => state);
    for (const state of states) destroySocket(state.connection);
    return states.length > 0;
  }

  detachLink(hubHostName: string, deviceId: string, link: FaultLink): boolean {
    const roles: Record<FaultLink, LinkRole[]> = {
      telemetry: ["telemetry"],
      twin: ["twin-request", "twin-reply"],
      c2d: ["c2d"],
      methods: ["method-request", "method-response"],
    };
    let detached = false;
    for (const [state] of this.connections.authorizationsOf(hubHostName, deviceId)) {
      for (const linkState of [...state.links.values()]) {
        if (linkState.deviceId !== deviceId || !roles[link].includes(linkState.role)) continue;
        // A clean detach of a receiver link would silently stop delivery in the SDK (§6.2): always an error.
        closeLink(linkState.link, {
          condition: Condition.internal,
          description: "Link detached by fault injection.",
        });
        detached = true;
      }
    }
    return detached;
  }

  rejectNextTokens(count: number): void {
    this.tokensToReject = Math.max(0, Math.floor(count));
  }

  throttleNext(count: number): void {
    this.telemetryToThrottle = Math.max(0, Math.floor(count));
  }

  exceedQuotaNext(count: number): void {
    this.telemetryOverQuota = Math.max(0, Math.floor(count));
  }

  throttleTwinGetsNext(count: number): void {
    this.twinGetsToThrottle = Math.max(0, Math.floor(count));
  }

  delayAcks(ms: number): void {
    this.ackDelay = Math.max(0, ms);
  }

  /** How long telemetry acknowledgements are held back. */
  get ackDelayMs(): number {
    return this.ackDelay;
  }

  /** True when this put-token request is to be rejected (and counts it). */
  takeTokenRejection(): boolean {
    if (this.tokensToReject <= 0) return false;
    this.tokensToReject -= 1;
    return true;
  }

  /** True when this twin GET is to be refused as throttled (and counts it). */
  takeTwinGetThrottling(): boolean {
    if (this.twinGetsToThrottle <= 0) return false;
    this.twinGetsToThrottle -= 1;
    return true;
  }

  /**
   * How this telemetry message is to be refused, if at all (and counts it): Azure answers a rate limit with
   * device-container-throttled (ThrottlingError in the SDK, transient) and a used-up daily quota with
   * resource-limit-exceeded (IotHubQuotaExceededError) — docs/hub-amqp-protocol.md §6.3.
   */
  takeTelemetryRefusal(): { condition: string; description: string } | undefined {
    if (this.telemetryToThrottle > 0) {
      this.telemetryToThrottle -= 1;
      return {
        condition: Condition.throttled,
        description: "Device container throttled: too many requests (fault injection).",
      };
    }
    if (this.telemetryOverQuota > 0) {
      this.telemetryOverQuota -= 1;
      return {
        condition: Condition.resourceLimitExceeded,
        description: "Message rejected: IoT hub daily message quota exceeded (fault injection).",
      };
    }
    return undefined;
  }
}
