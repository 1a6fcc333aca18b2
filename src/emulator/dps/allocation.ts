// Allocation policies (Azure DPS "how do you want to assign devices to hubs?"): evenly weighted distribution
// (hashed), lowest latency (geoLatency), static configuration. The custom webhook is in custom-allocation.ts.
import { createHash } from "node:crypto";
import type { LinkedHub } from "./hub-link.js";
import type { AllocationPolicy } from "./types.js";

/**
 * The hubs an enrollment may use: its own iotHubs list (or legacy iotHubHostName) when given, otherwise
 * every linked hub that applies the allocation policy. Names outside the linked hubs are dropped.
 */
export function candidateHubs(
  linkedHubs: readonly LinkedHub[],
  enrollment: { iotHubs?: string[]; iotHubHostName?: string },
): LinkedHub[] {
  const named = enrollment.iotHubs?.length
    ? enrollment.iotHubs
    : enrollment.iotHubHostName
      ? [enrollment.iotHubHostName]
      : undefined;
  if (named) {
    const wanted = new Set(named.map((n) => n.toLowerCase()));
    return linkedHubs.filter((h) => wanted.has(h.hostName.toLowerCase()));
  }
  return linkedHubs.filter((h) => h.applyAllocationPolicy !== false);
}

/** Picks a hub for a registration; undefined when no candidate can take it. */
export function chooseHub(
  policy: Exclude<AllocationPolicy, "custom">,
  candidates: readonly LinkedHub[],
  registrationId: string,
): LinkedHub | undefined {
  if (candidates.length === 0) return undefined;
  switch (policy) {
    case "static":
      return candidates[0];
    case "geoLatency": {
      const open = candidates.filter((h) => (h.allocationWeight ?? 1) > 0);
      if (open.length === 0) return undefined;
      const lowest = Math.min(...open.map((h) => h.latencyMs ?? 0));
      return weightedByHash(
        open.filter((h) => (h.latencyMs ?? 0) === lowest),
        registrationId,
      );
    }
    case "hashed":
      return weightedByHash(candidates, registrationId);
  }
}

/** Evenly weighted distribution: a stable hash of the registration id lands in a hub's share of the weights. */
function weightedByHash(hubs: readonly LinkedHub[], registrationId: string): LinkedHub | undefined {
  const weighted = hubs.filter((h) => (h.allocationWeight ?? 1) > 0);
  const total = weighted.reduce((sum, h) => sum + (h.allocationWeight ?? 1), 0);
  if (total <= 0) return undefined;
  const digest = createHash("sha256").update(registrationId.toLowerCase()).digest();
  let point = digest.readUIntBE(0, 6) % total;
  for (const hub of weighted) {
    point -= hub.allocationWeight ?? 1;
    if (point < 0) return hub;
  }
  return weighted[weighted.length - 1];
}
