// The emulator's service REST API: DPS (enrollments, groups, registrations), IoT Hub (devices, twins,
// methods) and emulator-only routes (telemetry, events, C2D, faults), over one HTTPS listener.
import type { SharedAccessPolicy } from "./auth.js";
import { dpsRoutes, type DpsServiceStore } from "./dps-routes.js";
import { emulatorRoutes, type DpsFaultHandlers } from "./emulator-routes.js";
import { hubRegistryRoutes } from "./hub-registry-routes.js";
import { hubRoutes } from "./hub-routes.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  serviceApiRequestListener,
  startServiceApiServer,
  type ServiceApiServer,
  type ServiceApiServerOptions,
} from "./server.js";
import type { HubFaults, HubRegistry, HubService } from "../hub/types.js";

export type { SharedAccessPolicy, ServiceCaller } from "./auth.js";
export { authenticateServiceCall } from "./auth.js";
export { ServiceApiError } from "./errors.js";
export type { ServiceApiServer } from "./server.js";
export type { DpsServiceStore } from "./dps-routes.js";
export type { DpsFaultHandlers } from "./emulator-routes.js";
export type { TelemetryJson } from "./telemetry-json.js";

export interface ServiceApiOptions {
  host?: string;
  port?: number;
  tls: { key: string; cert: string };
  /** The DPS service policy (provisioningserviceowner) and the hub's (iothubowner). */
  policies: { dps: SharedAccessPolicy; hub: SharedAccessPolicy };
  hub: { registry: HubRegistry; service: HubService; faults: HubFaults };
  /** The hub emulator-only calls use when the caller names none. */
  defaultHubHostName: string;
  dpsStore: DpsServiceStore;
  dpsFaults?: DpsFaultHandlers;
  maxBodyBytes?: number;
  onInternalError?: (error: unknown) => void;
}

function serverOptions(options: ServiceApiOptions): ServiceApiServerOptions {
  const routes = [
    ...dpsRoutes(options.dpsStore),
    ...hubRoutes(options.hub),
    ...hubRegistryRoutes(options.hub),
    ...emulatorRoutes({
      service: options.hub.service,
      faults: options.hub.faults,
      defaultHubHostName: options.defaultHubHostName,
      ...(options.dpsFaults ? { dpsFaults: options.dpsFaults } : {}),
    }),
  ];
  return {
    tls: options.tls,
    routes,
    policies: options.policies,
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.onInternalError ? { onInternalError: options.onInternalError } : {}),
  };
}

export function startServiceApi(options: ServiceApiOptions): Promise<ServiceApiServer> {
  return startServiceApiServer(serverOptions(options));
}

/** The service API without a listener of its own, for an HTTPS listener it shares (DPS's device API on 443). */
export function serviceApiListener(
  options: ServiceApiOptions,
): (request: IncomingMessage, response: ServerResponse) => void {
  return serviceApiRequestListener(serverOptions(options));
}
