// The whole local emulator in one call: TLS material, a DPS (AMQP, HTTPS, MQTT), an IoT hub (AMQP, MQTT,
// WebSocket, HTTPS) and the service REST API, all on loopback by default, with their state in one data
// directory so that a restart keeps the CA, the ID scope, the service keys, enrollments, registrations,
// devices and twins.
import { mkdir } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, isIP } from "node:net";
import { join } from "node:path";
import { ensureCertificates } from "./certs.js";
import { EnrollmentStore, startDps, type Dps } from "./dps/index.js";
import { startHub, type Hub } from "./hub/index.js";
import { applyEnrollmentsFile, type AppliedEnrollments } from "./service-api/enrollments-file.js";
import {
  serviceApiListener,
  startServiceApi,
  type ServiceApiOptions,
  type ServiceApiServer,
  type SharedAccessPolicy,
} from "./service-api/index.js";
import {
  DPS_SERVICE_KEY_NAME,
  HUB_SERVICE_KEY_NAME,
  loadOrCreateServiceIdentity,
  serviceConnectionString,
} from "./service-api/service-identity.js";
import { startWebUi } from "./web/index.js";

/** Azure's default ports (AMQPS 5671, MQTTS 8883, HTTPS 443): a host name that omits the port means these. */
export const AMQPS_DEFAULT_PORT = 5671;
export const MQTTS_DEFAULT_PORT = 8883;
export const HTTPS_DEFAULT_PORT = 443;

export const HUB_DATA_FILE = "hub-registry.json";
export const DPS_DATA_FILE = "dps-enrollments.json";

export interface EmulatorOptions {
  /** Where the CA, keys, ID scope and all state live; created when missing. */
  dataDir: string;
  /** Listen address of every endpoint. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** DPS ports; 0 or absent = any free port. */
  amqpPort?: number;
  httpsPort?: number;
  mqttPort?: number;
  /** IoT hub AMQP port; 0 or absent = any free port, or 5671 when the hub has an address of its own. */
  hubPort?: number;
  /**
   * Listen address of the hub alone (e.g. 127.0.0.2), as Azure's hub is a host of its own: its host name is
   * then that address, with no port, and its ports default to Azure's: AMQP 5671, MQTT 8883, and HTTPS on
   * `webPort` (443 as the SDKs expect), where the service API is served too. Default: `host`.
   */
  hubHost?: string;
  /** IoT hub MQTT port (8883 on Azure); 0 or absent = any free port, or 8883 when the hub has an address of its own. */
  hubMqttPort?: number;
  /**
   * IoT hub HTTPS port (443 on Azure): MQTT / AMQP over WebSocket and the device HTTPS API; 0 or absent = any
   * free port, or `webPort` when the hub has an address of its own (the service API then shares it).
   */
  hubHttpsPort?: number;
  /**
   * Service REST API port; 0 or absent = any free port. The same port as `httpsPort` (443, as the SDKs expect)
   * serves both on one listener: the DPS device API under "/{idScope}/registrations/", the service API elsewhere.
   */
  webPort?: number;
  /** Web page (plain HTTP, access token in its URL) port; 0 or absent = any free port. */
  uiPort?: number;
  /** Web page listen address. Default 127.0.0.1, whatever `host` is; a non-loopback one needs `uiAllowNonLoopback`. */
  uiHost?: string;
  /** Let the web page listen on a non-loopback `uiHost` (it is plain HTTP, guarded by its token only). */
  uiAllowNonLoopback?: boolean;
  /** The hub's logical host name (what DPS assigns and devices sign for). Default "localhost[:hubPort]". */
  hubHostName?: string;
  /** A JSON file of enrollments / enrollment groups applied at start (idempotent). */
  enrollmentsFile?: string;
  /** CAs (PEM) whose device certificates the hub accepts for certificateAuthority devices. */
  deviceCaPems?: string[];
  /** Seconds DPS tells devices to wait between polls. Default 1. */
  retryAfterSeconds?: number;
  /** One line per notable event (never keys or tokens). Default: silent. */
  log?: (line: string) => void;
}

export interface EmulatorEndpoints {
  /** "host:port" as a device's provisioningHost (AMQP and MQTT accept a port there). */
  dps: { amqp: string; https: string; mqtt: string };
  /**
   * A device whose host name carries the AMQP port reaches MQTT with GatewayHostName={mqtt}; the SDK's
   * WebSocket and HTTPS transports only reach `https` when it is port 443.
   */
  hub: { hostName: string; amqp: string; mqtt: string; https: string };
  /** Base URL of the service REST API. */
  web: string;
}

export interface Emulator {
  readonly endpoints: EmulatorEndpoints;
  readonly caPem: string;
  readonly caFile: string;
  readonly idScope: string;
  readonly connectionStrings: { dpsService: string; hubService: string };
  readonly enrollmentsApplied?: AppliedEnrollments;
  readonly hub: Hub;
  readonly dps: Dps;
  /** The web page: `url` carries this start's access token (http://127.0.0.1:PORT/?token=...). */
  readonly ui: { readonly url: string };
  close(): Promise<void>;
}

/** The name clients use for a listen address: localhost for loopback and wildcard addresses. */
export function publicHostName(host: string): string {
  return ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost"].includes(host) ? "localhost" : host;
}

/** "host:port", with the port left out when it is the protocol's default (as Azure host names are). */
export function hostNameWithPort(host: string, port: number, defaultPort: number): string {
  const shown = isIP(host) === 6 ? `[${host}]` : host;
  return port === defaultPort ? shown : `${shown}:${port}`;
}

function endpoint(host: string, port: number | undefined): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port ?? 0}`;
}

/** A free TCP port on `host`: the hub's host name has to carry its port before the hub starts. */
function reserveFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const host = options.host ?? "127.0.0.1";
  const log = options.log ?? (() => undefined);
  const publicHost = publicHostName(host);
  const identity = await loadOrCreateServiceIdentity(await ensureDataDir(options.dataDir));

  const hubListenHost = options.hubHost ?? host;
  const hubPublicHost = publicHostName(hubListenHost);
  const hubPort =
    options.hubPort || (options.hubHost ? AMQPS_DEFAULT_PORT : await reserveFreePort(hubListenHost));
  const hubHostName = options.hubHostName ?? hostNameWithPort(hubPublicHost, hubPort, AMQPS_DEFAULT_PORT);
  const hubHasOwnAddress = !!options.hubHost && hubListenHost !== host;
  const hubMqttPort = options.hubMqttPort || (options.hubHost ? MQTTS_DEFAULT_PORT : 0);
  const hubHttpsPort = options.hubHttpsPort || (hubHasOwnAddress && options.webPort ? options.webPort : 0);
  // Registry dials the hub's host name on the service API's port (443 on Azure): the hub's HTTPS listener
  // there serves the service API on the paths that are not its own (WebSocket, device HTTPS API).
  const hubServesServiceApi = hubHasOwnAddress && !!options.webPort && hubHttpsPort === options.webPort;
  const certificates = await ensureCertificates({
    dataDir: options.dataDir,
    hostNames: [...new Set([host, hubListenHost, hubHostName])],
  });
  const tls = { key: certificates.serverKeyPem, cert: certificates.serverCertPem };
  if (certificates.createdCa) log(`created a new CA: ${certificates.caCertFile}`);

  const started: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const part of started.reverse()) await part.close().catch(() => undefined);
    started.length = 0;
  };
  // The service API is built after DPS and the hub (it drives both), so the listeners that share a port with
  // it hand it their other requests through this late-bound listener.
  let serviceRequests: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const lateServiceRequests = (req: IncomingMessage, res: ServerResponse): void => {
    if (serviceRequests) serviceRequests(req, res);
    else res.writeHead(503).end();
  };
  try {
    const hub = await startHub({
      host: hubListenHost,
      port: hubPort,
      tls: { ...tls, ...(options.deviceCaPems?.length ? { clientCa: options.deviceCaPems } : {}) },
      hostNames: [hubHostName],
      dataFile: join(options.dataDir, HUB_DATA_FILE),
      servicePolicies: [{ keyName: HUB_SERVICE_KEY_NAME, key: identity.hubServiceKey }],
      mqttPort: hubMqttPort,
      httpsPort: hubHttpsPort,
      ...(hubServesServiceApi ? { otherHttpsRequests: lateServiceRequests } : {}),
      log,
    });
    started.push(hub);

    const store = new EnrollmentStore({ file: join(options.dataDir, DPS_DATA_FILE) });
    const enrollmentsApplied = options.enrollmentsFile
      ? await applyEnrollmentsFile(store, options.enrollmentsFile)
      : undefined;
    if (enrollmentsApplied) {
      log(
        `enrollments file: ${enrollmentsApplied.created.length} created, ${enrollmentsApplied.updated.length} updated, ` +
          `${enrollmentsApplied.unchanged.length} unchanged`,
      );
    }
    // DPS's device API and the service API on one HTTPS port.
    const sharedHttps = !!options.webPort && options.webPort === options.httpsPort;
    const dps = await startDps({
      host,
      ...(sharedHttps ? { otherHttpsRequests: lateServiceRequests } : {}),
      tls: { ...tls, ...(options.deviceCaPems?.length ? { clientCa: options.deviceCaPems } : {}) },
      amqpPort: options.amqpPort ?? 0,
      httpsPort: options.httpsPort ?? 0,
      mqttPort: options.mqttPort ?? 0,
      idScope: identity.idScope,
      store,
      hubs: { registry: hub.registry, service: hub.service, linkedHubs: [{ hostName: hubHostName }] },
      ...(options.retryAfterSeconds !== undefined ? { retryAfterSeconds: options.retryAfterSeconds } : {}),
      log,
    });
    started.push(dps);

    // The DPS service host name carries the API's port, known once it listens: the policy reads this array.
    const dpsServiceHostNames: string[] = [];
    const dpsPolicy: SharedAccessPolicy = {
      hostNames: dpsServiceHostNames,
      keyName: DPS_SERVICE_KEY_NAME,
      key: identity.dpsServiceKey,
    };
    const hubPolicy: SharedAccessPolicy = {
      hostNames: [hubHostName],
      keyName: HUB_SERVICE_KEY_NAME,
      key: identity.hubServiceKey,
    };
    const apiOptions: ServiceApiOptions = {
      host,
      port: options.webPort ?? 0,
      tls,
      policies: { dps: dpsPolicy, hub: hubPolicy },
      hub,
      defaultHubHostName: hubHostName,
      dpsStore: store,
      dpsFaults: {
        throttle: (body) => {
          const count = body.count;
          if (typeof count !== "number" || !Number.isInteger(count) || count < 0) return false;
          dps.faults.throttleNext(count);
          return true;
        },
      },
      onInternalError: (error) => log(`service API internal error: ${(error as Error)?.name ?? "error"}`),
    };
    if (sharedHttps || hubServesServiceApi) serviceRequests = serviceApiListener(apiOptions);
    let apiPort: number;
    if (sharedHttps) {
      apiPort = dps.ports.https ?? 0;
    } else {
      const api: ServiceApiServer = await startServiceApi(apiOptions);
      started.push(api);
      apiPort = api.port;
    }
    // A hub with an address of its own answers its service REST API there too, as Azure's hub host name does:
    // on its HTTPS listener when that has the API's port, else on a listener of its own.
    if (hubHasOwnAddress && options.webPort && !hubServesServiceApi) {
      started.push(await startServiceApi({ ...apiOptions, host: hubListenHost }));
    }
    const dpsServiceHostName = hostNameWithPort(publicHost, apiPort, HTTPS_DEFAULT_PORT);
    dpsServiceHostNames.push(dpsServiceHostName);

    const ui = await startWebUi({
      backend: { registry: hub.registry, service: hub.service, enrollments: store, hubHostName },
      host: options.uiHost ?? "127.0.0.1",
      port: options.uiPort ?? 0,
      ...(options.uiAllowNonLoopback ? { allowNonLoopback: true } : {}),
      onInternalError: (error) => log(`web page internal error: ${(error as Error)?.name ?? "error"}`),
    });
    started.push(ui);

    const endpoints: EmulatorEndpoints = {
      dps: {
        amqp: endpoint(publicHost, dps.ports.amqp),
        https: endpoint(publicHost, dps.ports.https),
        mqtt: endpoint(publicHost, dps.ports.mqtt),
      },
      hub: {
        hostName: hubHostName,
        amqp: endpoint(hubPublicHost, hub.port),
        mqtt: endpoint(hubPublicHost, hub.mqttPort),
        https: endpoint(hubPublicHost, hub.httpsPort),
      },
      web: `https://${dpsServiceHostName}/`,
    };
    let closing: Promise<void> | undefined;
    return {
      endpoints,
      caPem: certificates.caCertPem,
      caFile: certificates.caCertFile,
      idScope: identity.idScope,
      connectionStrings: {
        dpsService: serviceConnectionString(dpsServiceHostName, DPS_SERVICE_KEY_NAME, identity.dpsServiceKey),
        hubService: serviceConnectionString(hubHostName, HUB_SERVICE_KEY_NAME, identity.hubServiceKey),
      },
      ...(enrollmentsApplied ? { enrollmentsApplied } : {}),
      hub,
      dps,
      ui: { url: ui.url },
      close: () => (closing ??= closeAll()),
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** Creates the data directory owner-only when missing (it holds keys); an existing one is left as it is. */
async function ensureDataDir(dataDir: string): Promise<string> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  return dataDir;
}
