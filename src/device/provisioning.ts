// One DPS registration with the unmodified azure-iot-provisioning-device client, over the chosen
// transport, trusting an extra CA when one is configured (docs/dps-protocol.md §1, §1.1, §2).
import { Agent as HttpsAgent } from "node:https";
import { createRequire } from "node:module";
import { ProvisioningDeviceClient } from "azure-iot-provisioning-device";
import { Amqp as ProvisioningAmqp, AmqpWs as ProvisioningAmqpWs } from "azure-iot-provisioning-device-amqp";
import { Http as ProvisioningHttp } from "azure-iot-provisioning-device-http";
import { Mqtt as ProvisioningMqtt } from "azure-iot-provisioning-device-mqtt";
import { SymmetricKeySecurityClient } from "azure-iot-security-symmetric-key";
import { X509Security } from "azure-iot-security-x509";
import type { TpmSecurityClient } from "../tpm/security-client.js";
import type { DpsTransportKind } from "./config.js";
import {
  ConfigurationError,
  OperationTimeoutError,
  ProvisioningError,
  SessionStoppedError,
} from "./errors.js";
import { describeError } from "./retryable.js";
import { ProxyTunnelAgent, type ResolvedProxy } from "./proxy.js";
import { DEFAULT_PORTS, isOpaqueConnectionFailure, tlsProblem } from "./tls-diagnosis.js";

/** What the device proves itself with, in the form the SDK's security clients take. */
export type ProvisioningSecurity =
  | { kind: "symmetricKey"; registrationId: string; deviceKey: string }
  | { kind: "x509"; registrationId: string; cert: string; key: string }
  | { kind: "tpm"; registrationId: string; client: TpmSecurityClient };

export interface ProvisioningRequest {
  /** DPS host, optionally with ":port". */
  endpoint: string;
  idScope: string;
  transport: DpsTransportKind;
  ca?: string;
  /** The HTTP proxy to tunnel through (amqp-ws and https only). */
  proxy?: ResolvedProxy;
  security: ProvisioningSecurity;
  payload?: Record<string, unknown>;
  timeoutMs: number;
  /** Aborting cancels the registration (the session is stopping). */
  signal?: AbortSignal;
}

export interface ProvisionedIdentity {
  registrationId: string;
  assignedHub: string;
  deviceId: string;
}

/** Splits "host[:port]"; the port is undefined when absent. */
export function splitHostPort(endpoint: string): { host: string; port?: number } {
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(endpoint.trim());
  if (!match?.[1]) throw new ConfigurationError(`"${endpoint}" is not a host name or host:port`);
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) {
    throw new ConfigurationError(`port ${port} in "${endpoint}" is out of range`);
  }
  return { host: match[1], port };
}

// The transports bring their own (older) copies of the protocol base packages. Load the copy each transport
// itself uses, so that the object we hand it is of the version it was written against.
const requireFromAmqpTransport = createRequire(require.resolve("azure-iot-provisioning-device-amqp"));
const requireFromHttpTransport = createRequire(require.resolve("azure-iot-provisioning-device-http"));
const requireFromMqttTransport = createRequire(require.resolve("azure-iot-provisioning-device-mqtt"));

interface AmqpBaseConfig {
  sslOptions?: Record<string, unknown>;
}
interface AmqpBaseInstance {
  connect(config: AmqpBaseConfig, done: unknown): unknown;
}
type AmqpBaseClass = new (autoSettleMessages: boolean) => AmqpBaseInstance;
interface HttpBaseInstance {
  setOptions(options: Record<string, unknown>): void;
}
interface MqttBaseInstance {
  setOptions(options: Record<string, unknown>): void;
}

/**
 * An AMQP base that adds the trusted CA and the WebSocket agent to every connect: the SDK's TPM connect passes
 * neither on, and process-wide TLS settings are not ours to touch (docs/dps-protocol.md §1.1).
 */
function amqpBaseWith(extra: { ca?: string; agent?: HttpsAgent }): AmqpBaseInstance {
  const { Amqp: Base } = requireFromAmqpTransport("azure-iot-amqp-base") as { Amqp: AmqpBaseClass };
  class ConfiguredAmqpBase extends Base {
    override connect(config: AmqpBaseConfig, done: unknown): unknown {
      config.sslOptions = { ...config.sslOptions, ...extra };
      return super.connect(config, done);
    }
  }
  return new ConfiguredAmqpBase(true);
}

type ProvisioningTransport = ProvisioningAmqp | ProvisioningHttp | ProvisioningMqtt;

interface BuiltTransport {
  host: string;
  transport: ProvisioningTransport;
  /** Releases what the transport does not release itself (an HTTPS agent). */
  dispose(): void;
}

function buildTransport(request: ProvisioningRequest): BuiltTransport {
  const { host, port } = splitHostPort(request.endpoint);
  const { ca, proxy } = request;
  const nothing = (): void => undefined;
  if (proxy && (request.transport === "amqp" || request.transport === "mqtt")) {
    throw new ConfigurationError(
      `an HTTP proxy carries only WebSocket and HTTPS: choose the amqp-ws or https DPS transport, not ${request.transport}`,
    );
  }
  switch (request.transport) {
    case "amqp": {
      const base = ca ? amqpBaseWith({ ca }) : undefined;
      return {
        host: request.endpoint,
        transport: new ProvisioningAmqp(base as ConstructorParameters<typeof ProvisioningAmqp>[0]),
        dispose: nothing,
      };
    }
    case "amqp-ws": {
      // The SDK appends ":443" itself; a port here makes an invalid URL that rhea throws outside any
      // callback, which would end the process (docs/dps-protocol.md §1).
      if (port !== undefined) {
        throw new ConfigurationError(
          `the amqp-ws transport always uses port 443: remove ":${port}" from the endpoint`,
        );
      }
      // An agent of our own even without a proxy: rhea holds only a WebSocket wrapper that cannot end the socket,
      // so destroying the agent is what ends an abandoned registration's socket (docs/dps-protocol.md §2.4).
      const agent = proxy ? new ProxyTunnelAgent(proxy) : new HttpsAgent();
      const base = amqpBaseWith(ca ? { ca, agent } : { agent });
      const transport = new ProvisioningAmqpWs(base as ConstructorParameters<typeof ProvisioningAmqpWs>[0]);
      return { host, transport, dispose: () => agent.destroy() };
    }
    case "https": {
      const { Http: HttpBase } = requireFromHttpTransport("azure-iot-http-base") as {
        Http: new () => HttpBaseInstance;
      };
      const base = new HttpBase();
      // The http base puts the host into request options verbatim, so a port goes on an agent; https.Agent's
      // constructor forces 443, so defaultPort is assigned afterwards (docs/dps-protocol.md §1.1).
      const agent = proxy ? new ProxyTunnelAgent(proxy, ca ? { ca } : {}) : new HttpsAgent(ca ? { ca } : {});
      if (port !== undefined) Object.assign(agent, { defaultPort: port });
      base.setOptions({ ...(ca ? { ca } : {}), http: { agent } });
      return {
        host,
        transport: new ProvisioningHttp(base as ConstructorParameters<typeof ProvisioningHttp>[0]),
        dispose: () => agent.destroy(),
      };
    }
    case "mqtt": {
      if (request.security.kind === "tpm") {
        throw new ConfigurationError(
          "TPM attestation cannot use the mqtt transport: choose amqp, amqp-ws or https",
        );
      }
      const { MqttBase } = requireFromMqttTransport("azure-iot-mqtt-base") as {
        MqttBase: new () => MqttBaseInstance;
      };
      const base = new MqttBase();
      if (ca) base.setOptions({ ca });
      return {
        host: request.endpoint,
        transport: new ProvisioningMqtt(base as ConstructorParameters<typeof ProvisioningMqtt>[0]),
        dispose: nothing,
      };
    }
    default:
      throw new ConfigurationError(`unknown DPS transport "${String(request.transport)}"`);
  }
}

/**
 * Ends the socket an AMQP or MQTT provisioning transport still holds. The SDK's `cancel()` defers its
 * disconnect until a connect in progress ends, and against a DPS that never answers it never ends: without
 * this, every abandoned registration would leave a socket open (docs/dps-protocol.md §2.4). The fields read
 * here are the SDK's private ones; each access is guarded, so that a changed SDK falls back to `cancel()`
 * alone rather than a crash. Destroying rhea's socket makes it emit `disconnected`, which fails the pending
 * connect; mqtt.js's forced `end` closes its stream the same way.
 */
function endTransportSocket(transport: ProvisioningTransport): void {
  const holder = transport as unknown as { _amqpBase?: unknown; _mqttBase?: unknown };
  const amqpBase = holder._amqpBase as { _rheaConnection?: { socket?: { destroy?: unknown } } } | undefined;
  const rheaSocket = amqpBase?._rheaConnection?.socket;
  if (typeof rheaSocket?.destroy === "function") (rheaSocket.destroy as () => void).call(rheaSocket);
  const mqttBase = holder._mqttBase as { _mqttClient?: { end?: unknown } } | undefined;
  const mqttClient = mqttBase?._mqttClient;
  if (typeof mqttClient?.end === "function")
    (mqttClient.end as (force: boolean) => void).call(mqttClient, true);
}

/** What a provisioning transport sends to DPS: the requests of the SDK's polling and TPM transport interfaces. */
const DPS_REQUESTS = [
  "registrationRequest",
  "queryOperationStatus",
  "getAuthenticationChallenge",
  "respondToAuthenticationChallenge",
] as const;

/**
 * Makes the transport refuse every request once it is cancelled. The SDK's `cancel()` reaches only the
 * transport (over HTTPS a no-op; over AMQP and MQTT a disconnect), never its polling loop, whose next poll
 * would connect again: an abandoned registration would go on polling for as long as DPS answers "assigning"
 * (docs/dps-protocol.md §2.4). A refused request fails the SDK's registration, which ends its loop.
 */
function refuseRequestsOnceCancelled(transport: ProvisioningTransport): void {
  const methods = transport as unknown as Record<string, unknown>;
  const cancelTransport = methods.cancel as (done: (error?: Error) => void) => void;
  let cancelled = false;
  methods.cancel = (done: (error?: Error) => void): void => {
    cancelled = true;
    cancelTransport.call(transport, done);
  };
  for (const name of DPS_REQUESTS) {
    const send = methods[name];
    if (typeof send !== "function") continue;
    methods[name] = (...args: unknown[]): unknown => {
      if (!cancelled) return (send as (...a: unknown[]) => unknown).apply(transport, args);
      const done = args[args.length - 1] as (error: Error) => void;
      done(new Error("the DPS registration was cancelled"));
      return undefined;
    };
  }
}

function buildSecurityClient(
  request: ProvisioningRequest,
): Parameters<typeof ProvisioningDeviceClient.create>[3] {
  const { security } = request;
  switch (security.kind) {
    case "symmetricKey":
      // Each SDK package brings its own azure-iot-common, so the types differ while the shapes match.
      return new SymmetricKeySecurityClient(
        security.registrationId,
        security.deviceKey,
      ) as unknown as Parameters<typeof ProvisioningDeviceClient.create>[3];
    case "x509":
      // AMQP uses this object as its TLS options, so the CA goes here too (docs/dps-protocol.md §1.1).
      return new X509Security(security.registrationId, {
        cert: security.cert,
        key: security.key,
        ...(request.ca ? { ca: request.ca } : {}),
      });
    case "tpm":
      return security.client;
  }
}

interface RegistrationStateLike {
  registrationId?: unknown;
  assignedHub?: unknown;
  deviceId?: unknown;
}

/** TPM registration hands back the whole operation; the others only its registrationState (docs/dps-protocol.md §2.1). */
function identityFrom(result: unknown, registrationId: string): ProvisionedIdentity {
  const outer = (result ?? {}) as { registrationState?: RegistrationStateLike } & RegistrationStateLike;
  const state = outer.registrationState ?? outer;
  if (
    typeof state.assignedHub !== "string" ||
    !state.assignedHub ||
    typeof state.deviceId !== "string" ||
    !state.deviceId
  ) {
    throw new ProvisioningError(`DPS assigned "${registrationId}" no hub or device id`, registrationId);
  }
  return { registrationId, assignedHub: state.assignedHub, deviceId: state.deviceId };
}

/** Registers once. Rejects with ProvisioningError (cause: the SDK's error), never throws synchronously. */
export function provisionDevice(request: ProvisioningRequest): Promise<ProvisionedIdentity> {
  const { registrationId } = request.security;
  return new Promise<ProvisionedIdentity>((resolve, reject) => {
    let built: BuiltTransport;
    let client: ReturnType<typeof ProvisioningDeviceClient.create>;
    try {
      built = buildTransport(request);
      refuseRequestsOnceCancelled(built.transport);
      // AMQP and MQTT emit "error" when their connection drops between requests (or is ended by cancel below);
      // unheard, that would end the process. The registration learns of a failure through its callback.
      built.transport.on("error", () => undefined);
      client = ProvisioningDeviceClient.create(
        built.host,
        request.idScope,
        built.transport,
        buildSecurityClient(request),
      );
      if (request.payload) client.setProvisioningPayload(request.payload);
    } catch (error) {
      reject(error instanceof ConfigurationError ? error : wrap(error));
      return;
    }

    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
      built.dispose();
      outcome();
    };
    const cancel = (): void => {
      // The socket first: the SDK's cancel starts a graceful mqtt.js end, which on a client still connecting
      // never ends the stream, and after which a forced end is a no-op.
      try {
        endTransportSocket(built.transport);
      } catch {
        // A socket that is already gone may throw as it is ended again; nothing left to release.
      }
      try {
        void client.cancel(() => undefined);
      } catch {
        // Cancelling a registration that is already over may throw inside the SDK; nothing left to release.
      }
    };
    const onAbort = (): void => {
      cancel();
      finish(() => reject(new SessionStoppedError("DPS registration")));
    };
    const timer = setTimeout(() => {
      cancel();
      finish(() => reject(wrap(new OperationTimeoutError("DPS registration", request.timeoutMs))));
    }, request.timeoutMs);

    if (request.signal?.aborted) {
      onAbort();
      return;
    }
    request.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      void client.register((error, result) => {
        if (error) {
          void explain(error).then((explained) => finish(() => reject(explained)));
          return;
        }
        try {
          const identity = identityFrom(result, registrationId);
          finish(() => resolve(identity));
        } catch (failure) {
          finish(() => reject(failure instanceof Error ? failure : new Error(String(failure))));
        }
      });
    } catch (error) {
      finish(() => reject(wrap(error)));
    }
  });

  /** wrap(), naming the TLS or network reason the AMQP transports leave out of their errors. */
  async function explain(error: unknown): Promise<ProvisioningError> {
    if (!isOpaqueConnectionFailure(error)) return wrap(error);
    const { host, port } = splitHostPort(request.endpoint);
    const problem = await tlsProblem(
      host,
      port ?? DEFAULT_PORTS[request.transport],
      request.ca,
      undefined,
      request.proxy,
    ).catch(() => undefined);
    if (!problem) return wrap(error);
    return new ProvisioningError(
      `DPS registration of "${registrationId}" failed: ${problem}`,
      registrationId,
      {
        cause: error,
      },
    );
  }

  function wrap(error: unknown): ProvisioningError {
    return new ProvisioningError(
      `DPS registration of "${registrationId}" failed: ${describeError(error)}`,
      registrationId,
      {
        cause: error,
      },
    );
  }
}
