// The whole local emulator in one call: TLS material, a DPS (AMQP, HTTPS, MQTT), an IoT hub (AMQP, MQTT,
// WebSocket, HTTPS) and the service REST API, all on loopback by default, with their state in one data
// directory so that a restart keeps the CA, the ID scope, the service keys, enrollments, registrations, devices and twins.
import { mkdir } from "node:fs/promises";
import { createServer, isIP } from "node:net";
import { join } from "node:path";
import { ensureCertificates } from "./certs.js";
import { EnrollmentStore, startDps, type Dps } from "./dps/index.js";
import { startHub, type Hub } from "./hub/index.js";
import { applyEnrollmentsFile, type AppliedEnrollments } from "./service-api/enrollments-file.js";
import { startServiceApi, type ServiceApiServer, type SharedAccessPolicy } from "./service-api/index.js";
import {
  DPS_SERVICE_KEY_NAME,
  HUB_SERVICE_KEY_NAME,
  loadOrCreateServiceIdentity,
  serviceConnectionString,
} from "./service-api/service-identity.js";
import { startWebUi } from "./web/index.js";

/** Azure's default ports (AMQPS 5671, HTTPS 443): a host name that omits the port means these. */
export const AMQPS_DEFAULT_PORT = 5671;
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
  /** IoT hub AMQP port; 0 or absent = any free port. */
  hubPort?: number;
  /** IoT hub MQTT port (8883 on Azure); 0 or absent = any free port. */
  hubMqttPort?: number;
  /** IoT hub HTTPS port (443 on Azure): MQTT / AMQP over WebSocket and the device HTTPS API; 0 or absent = any free port. */
  hubHttpsPort?: number;
  /** Service REST API port; 0 or absent = any free port. */
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

  const hubPort = options.hubPort || (await reserveFreePort(host));
  const hubHostName = options.hubHostName ?? hostNameWithPort(publicHost, hubPort, AMQPS_DEFAULT_PORT);
  const certificates = await ensureCertificates({ dataDir: options.dataDir, hostNames: [host, hubHostName] });
  const tls = { key: certificates.serverKeyPem, cert: certificates.serverCertPem };
  if (certificates.createdCa) log(`created a new CA: ${certificates.caCertFile}`);

  const started: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    for (const part of started.reverse()) await part.close().catch(() => undefined);
    started.length = 0;
  };
  try {
    const hub = await startHub({
      host,
      port: hubPort,
      tls: { ...tls, ...(options.deviceCaPems?.length ? { clientCa: options.deviceCaPems } : {}) },
      hostNames: [hubHostName],
      dataFile: join(options.dataDir, HUB_DATA_FILE),
      mqttPort: options.hubMqttPort ?? 0,
      httpsPort: options.hubHttpsPort ?? 0,
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
    const dps = await startDps({
      host,
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
    const api: ServiceApiServer = await startServiceApi({
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
    });
    started.push(api);
    const dpsServiceHostName = hostNameWithPort(publicHost, api.port, HTTPS_DEFAULT_PORT);
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
        amqp: endpoint(publicHost, hub.port),
        mqtt: endpoint(publicHost, hub.mqttPort),
        https: endpoint(publicHost, hub.httpsPort),
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
