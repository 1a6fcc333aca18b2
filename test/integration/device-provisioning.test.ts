// provisionDevice on its own, with the unmodified provisioning SDK over real TLS on loopback: the emulator's DPS
// for each attestation and transport (through an HTTP CONNECT proxy for amqp-ws and https), a small HTTPS
// server playing a DPS that assigns no hub, and a TLS server that never answers (time-out and cancellation).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import {
  connect as netConnect,
  createServer as createNetServer,
  type AddressInfo,
  type Server,
  type Socket,
} from "node:net";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { getEventListeners } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { provisionDevice, type ProvisioningRequest } from "../../src/device/provisioning.js";
import {
  ConfigurationError,
  OperationTimeoutError,
  ProvisioningError,
  SessionStoppedError,
} from "../../src/device/errors.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";
import { ID_SCOPE, newSymmetricKey, startTestDps, type TestDps } from "./dps-fixtures.js";

const TIMEOUT_MS = 20_000;

function listening(server: Server | HttpsServer | TlsServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
}

/** A CONNECT proxy that records each target and tunnels every one to `127.0.0.1:targetPort`. */
async function connectProxy(targetPort: number) {
  const targets: string[] = [];
  const sockets: Socket[] = [];
  const server = createHttpServer();
  server.on("connect", (request: IncomingMessage, client: Socket, head: Buffer) => {
    targets.push(request.url ?? "");
    const upstream = netConnect(targetPort, "127.0.0.1", () => {
      client.write("HTTP/1.1 200 Connection established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    sockets.push(client, upstream);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  const port = await listening(server);
  return {
    port,
    targets,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** How soon an abandoned registration's connection must be closed: a socket the SDK leaks stays open far longer. */
const CLOSED_WITHIN_MS = 5_000;

async function until(condition: () => boolean, what: string, withinMs = TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function isProvisioningError(registrationId: string, pattern: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof ProvisioningError, `a ProvisioningError, not ${String(error)}`);
    assert.equal(error.registrationId, registrationId);
    assert.match(error.message, pattern);
    assert.ok(error.cause !== undefined, "the SDK's error kept as the cause");
    return true;
  };
}

describe("provisionDevice", () => {
  let dir: string;
  let emulator: Emulator;
  let pki: TestPki;
  const tpms: TestTpm[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-device-provisioning-"));
    // No wait between polls: each registration then takes milliseconds.
    emulator = await startEmulator({ dataDir: join(dir, "emulator"), retryAfterSeconds: 0 });
    pki = createTestPki();
  });

  after(async () => {
    for (const tpm of tpms) await tpm.dispose();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function enrolSymmetricKey(registrationId: string, extra: object = {}): string {
    const key = Buffer.from(`key-of-${registrationId}-0123456789abcdef`).toString("base64");
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      deviceId: `device-of-${registrationId}`,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
      ...extra,
    });
    return key;
  }

  function symmetricKeyRequest(
    registrationId: string,
    deviceKey: string,
    transport: ProvisioningRequest["transport"],
  ): ProvisioningRequest {
    return {
      endpoint: emulator.endpoints.dps[transport as "amqp" | "https" | "mqtt"],
      idScope: emulator.idScope,
      transport,
      ca: emulator.caPem,
      security: { kind: "symmetricKey", registrationId, deviceKey },
      timeoutMs: TIMEOUT_MS,
    };
  }

  for (const transport of ["amqp", "https", "mqtt"] as const) {
    it(`a symmetric-key device gets its hub and device id over ${transport}, leaving no abort listener`, async () => {
      const registrationId = `prov-sk-${transport}`;
      const key = enrolSymmetricKey(registrationId);
      const signal = new AbortController().signal;
      const identity = await provisionDevice({
        ...symmetricKeyRequest(registrationId, key, transport),
        signal,
      });
      assert.deepEqual(identity, {
        registrationId,
        assignedHub: emulator.endpoints.hub.hostName,
        deviceId: `device-of-${registrationId}`,
      });
      assert.equal(getEventListeners(signal, "abort").length, 0);
    });
  }

  it("sends the payload with the registration: its model id reaches the hub's device record", async () => {
    const registrationId = "prov-sk-payload";
    const key = enrolSymmetricKey(registrationId);
    const modelId = "dtmi:com:example:Thermostat;1";
    const identity = await provisionDevice({
      ...symmetricKeyRequest(registrationId, key, "amqp"),
      payload: { modelId },
    });
    assert.equal(emulator.hub.registry.getDevice(identity.assignedHub, identity.deviceId)?.modelId, modelId);
  });

  for (const transport of ["amqp", "https", "mqtt"] as const) {
    it(`an X.509 device (self-signed certificate) gets its identity over ${transport}, trusting the configured CA`, async () => {
      const registrationId = `prov-x509-${transport}`;
      const device = pki.issueClientCert(registrationId, { selfSigned: true });
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        attestation: {
          type: "x509",
          x509: { clientCertificates: { primary: { certificate: device.cert } } },
        },
      });
      const identity = await provisionDevice({
        endpoint: emulator.endpoints.dps[transport],
        idScope: emulator.idScope,
        transport,
        ca: emulator.caPem,
        security: { kind: "x509", registrationId, cert: device.cert, key: device.key },
        timeoutMs: TIMEOUT_MS,
      });
      assert.deepEqual(identity, {
        registrationId,
        assignedHub: emulator.endpoints.hub.hostName,
        deviceId: registrationId,
      });
    });
  }

  it("a TPM device (swtpm) gets the identity from the whole operation the TPM registration hands back", async () => {
    const tpm = await startTestTpm();
    tpms.push(tpm);
    const client = new TpmSecurityClient(tpm.connection);
    try {
      const endorsementKey = await client.getEndorsementKey();
      const registrationId = await client.getRegistrationId();
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        deviceId: "prov-tpm-device",
        attestation: { type: "tpm", tpm: { endorsementKey: endorsementKey.toString("base64") } },
      });
      const identity = await provisionDevice({
        endpoint: emulator.endpoints.dps.amqp,
        idScope: emulator.idScope,
        transport: "amqp",
        ca: emulator.caPem,
        security: { kind: "tpm", registrationId, client },
        timeoutMs: TIMEOUT_MS,
      });
      assert.deepEqual(identity, {
        registrationId,
        assignedHub: emulator.endpoints.hub.hostName,
        deviceId: "prov-tpm-device",
      });
    } finally {
      await client.close();
    }
  });

  it("https through an HTTP proxy: the tunnel goes to the endpoint's own port", async () => {
    const registrationId = "prov-sk-https-proxy";
    const key = enrolSymmetricKey(registrationId);
    const dpsPort = Number(emulator.endpoints.dps.https.split(":").pop());
    const proxy = await connectProxy(dpsPort);
    try {
      const identity = await provisionDevice({
        ...symmetricKeyRequest(registrationId, key, "https"),
        proxy: { host: "127.0.0.1", port: proxy.port },
      });
      assert.equal(identity.deviceId, `device-of-${registrationId}`);
      assert.ok(proxy.targets.length > 0, "the registration went through the proxy");
      for (const target of proxy.targets) assert.equal(target, emulator.endpoints.dps.https);
    } finally {
      proxy.close();
    }
  });

  it("amqp-ws through an HTTP proxy: the WebSocket goes to port 443 of the endpoint through the tunnel", async () => {
    const registrationId = "prov-sk-amqp-ws-proxy";
    const key = enrolSymmetricKey(registrationId);
    const dpsPort = Number(emulator.endpoints.dps.https.split(":").pop());
    const proxy = await connectProxy(dpsPort);
    try {
      const identity = await provisionDevice({
        ...symmetricKeyRequest(registrationId, key, "amqp-ws"),
        endpoint: "127.0.0.1",
        proxy: { host: "127.0.0.1", port: proxy.port },
      });
      assert.equal(identity.deviceId, `device-of-${registrationId}`);
      assert.ok(proxy.targets.length > 0, "the registration went through the proxy");
      for (const target of proxy.targets) assert.equal(target, "127.0.0.1:443");
    } finally {
      proxy.close();
    }
  });

  it("amqp-ws through an HTTP proxy without a CA of its own: still through the tunnel, refused by TLS", async () => {
    const registrationId = "prov-sk-amqp-ws-proxy-no-ca";
    const key = enrolSymmetricKey(registrationId);
    const dpsPort = Number(emulator.endpoints.dps.https.split(":").pop());
    const proxy = await connectProxy(dpsPort);
    try {
      await assert.rejects(
        provisionDevice({
          ...symmetricKeyRequest(registrationId, key, "amqp-ws"),
          endpoint: "127.0.0.1",
          ca: undefined,
          proxy: { host: "127.0.0.1", port: proxy.port },
          timeoutMs: 5_000,
        }),
        isProvisioningError(registrationId, /certificate/i),
      );
      assert.ok(proxy.targets.length > 0, "the connection went through the proxy");
      for (const target of proxy.targets) assert.equal(target, "127.0.0.1:443");
    } finally {
      proxy.close();
    }
  });

  // The SDK's TPM connect passes no WebSocket agent on: without ours in the AMQP base it would bypass the proxy
  // and go to 127.0.0.1:443 itself, where nothing listens.
  it("a TPM device over amqp-ws through an HTTP proxy: the challenge connection goes through the tunnel too", async () => {
    const tpm = await startTestTpm();
    tpms.push(tpm);
    const client = new TpmSecurityClient(tpm.connection);
    const dpsPort = Number(emulator.endpoints.dps.https.split(":").pop());
    const proxy = await connectProxy(dpsPort);
    try {
      const registrationId = await client.getRegistrationId();
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        deviceId: "prov-tpm-amqp-ws-proxy",
        attestation: {
          type: "tpm",
          tpm: { endorsementKey: (await client.getEndorsementKey()).toString("base64") },
        },
      });
      const identity = await provisionDevice({
        endpoint: "127.0.0.1",
        idScope: emulator.idScope,
        transport: "amqp-ws",
        ca: emulator.caPem,
        security: { kind: "tpm", registrationId, client },
        proxy: { host: "127.0.0.1", port: proxy.port },
        timeoutMs: TIMEOUT_MS,
      });
      assert.equal(identity.deviceId, "prov-tpm-amqp-ws-proxy");
      assert.ok(proxy.targets.length > 0, "the registration went through the proxy");
      for (const target of proxy.targets) assert.equal(target, "127.0.0.1:443");
    } finally {
      proxy.close();
      await client.close();
    }
  });

  describe("configuration refused before any connection, as a rejection", () => {
    const security = { kind: "symmetricKey", registrationId: "cfg", deviceKey: "a2V5" } as const;
    const request = (extra: Partial<ProvisioningRequest>): ProvisioningRequest => ({
      endpoint: "127.0.0.1:1",
      idScope: "0ne00000001",
      transport: "amqp",
      security,
      timeoutMs: TIMEOUT_MS,
      ...extra,
    });
    const cases: Array<[string, Partial<ProvisioningRequest>, RegExp]> = [
      [
        "a proxy with amqp",
        { transport: "amqp", proxy: { host: "127.0.0.1", port: 3128 } },
        /^an HTTP proxy carries only WebSocket and HTTPS: choose the amqp-ws or https DPS transport, not amqp$/,
      ],
      [
        "a proxy with mqtt",
        { transport: "mqtt", proxy: { host: "127.0.0.1", port: 3128 } },
        /choose the amqp-ws or https DPS transport, not mqtt$/,
      ],
      [
        "a port with amqp-ws",
        { transport: "amqp-ws", endpoint: "127.0.0.1:8443" },
        /^the amqp-ws transport always uses port 443: remove ":8443" from the endpoint$/,
      ],
      [
        "an unknown transport",
        { transport: "carrier-pigeon" as never },
        /^unknown DPS transport "carrier-pigeon"$/,
      ],
      ["an endpoint that is no host", { endpoint: "a:b:c" }, /is not a host name or host:port/],
    ];
    for (const [what, extra, message] of cases) {
      it(what, async () => {
        let promise: Promise<unknown> | undefined;
        assert.doesNotThrow(() => (promise = provisionDevice(request(extra))));
        await assert.rejects(promise!, (error: Error) => {
          assert.ok(error instanceof ConfigurationError, String(error));
          assert.match(error.message, message);
          return true;
        });
      });
    }

    it("TPM attestation with mqtt", async () => {
      const tpm = { kind: "tpm", registrationId: "cfg", client: {} as TpmSecurityClient } as const;
      await assert.rejects(
        provisionDevice(request({ transport: "mqtt", security: tpm })),
        (error: Error) =>
          error instanceof ConfigurationError &&
          error.message === "TPM attestation cannot use the mqtt transport: choose amqp, amqp-ws or https",
      );
    });
  });

  describe("failures as ProvisioningError", () => {
    it("an unknown registration: DPS's refusal, with the registration id and the SDK's error", async () => {
      const key = Buffer.from("nobody-enrolled-this-0123456789").toString("base64");
      await assert.rejects(
        provisionDevice(symmetricKeyRequest("prov-unknown", key, "amqp")),
        isProvisioningError("prov-unknown", /^DPS registration of "prov-unknown" failed: /),
      );
    });

    it("a TPM client that fails at once: a rejection, never a throw", async () => {
      const broken = {} as TpmSecurityClient;
      let promise: Promise<unknown> | undefined;
      assert.doesNotThrow(
        () =>
          (promise = provisionDevice({
            ...symmetricKeyRequest("prov-broken-tpm", "a2V5", "amqp"),
            security: { kind: "tpm", registrationId: "prov-broken-tpm", client: broken },
          })),
      );
      await assert.rejects(
        promise!,
        isProvisioningError("prov-broken-tpm", /^DPS registration of "prov-broken-tpm" failed: /),
      );
    });

    // Inputs on which the SDK's register() throws before it calls back (each checked to reach that catch).
    const throwingRegistrations: Array<[string, Partial<ProvisioningRequest>, RegExp]> = [
      ...(["amqp", "https", "mqtt"] as const).map(
        (transport): [string, Partial<ProvisioningRequest>, RegExp] => [
          `an X.509 certificate that is not PEM, over ${transport}`,
          {
            transport,
            security: {
              kind: "x509",
              registrationId: "prov-throws",
              cert: "not a certificate",
              key: "not a key",
            },
          },
          /PEM routines::no start line$/,
        ],
      ),
      [
        "a registration id with a space, over https (it goes into the request path unescaped)",
        {
          transport: "https",
          security: { kind: "symmetricKey", registrationId: "prov throws", deviceKey: "a2V5" },
        },
        /Request path contains unescaped characters$/,
      ],
      ["an amqp-ws host that makes no URL", { transport: "amqp-ws", endpoint: "not a host" }, /Invalid URL$/],
      [
        "a payload JSON cannot carry, over https",
        { transport: "https", payload: { serial: 12n } },
        /Do not know how to serialize a BigInt$/,
      ],
    ];
    for (const [what, request, reason] of throwingRegistrations) {
      it(`the SDK throwing at once, ${what}: a rejection naming the reason, no abort listener left`, async () => {
        const signal = new AbortController().signal;
        const registrationId = request.security?.registrationId ?? "prov-throws";
        let promise: Promise<unknown> | undefined;
        assert.doesNotThrow(
          () =>
            (promise = provisionDevice({
              endpoint: "127.0.0.1:1",
              idScope: "0ne00000001",
              transport: "https",
              security: { kind: "symmetricKey", registrationId, deviceKey: "a2V5" },
              timeoutMs: TIMEOUT_MS,
              signal,
              ...request,
            })),
        );
        await assert.rejects(promise!, (error: Error) => {
          assert.ok(error instanceof ProvisioningError, String(error));
          assert.equal(error.registrationId, registrationId);
          assert.match(error.message, new RegExp(`^DPS registration of "${registrationId}" failed: `));
          assert.match(error.message, reason);
          assert.ok(error.cause instanceof Error, "the SDK's error kept as the cause");
          return true;
        });
        assert.equal(getEventListeners(signal, "abort").length, 0);
      });
    }

    it("a disabled enrollment", async () => {
      const key = enrolSymmetricKey("prov-disabled", { provisioningStatus: "disabled" });
      await assert.rejects(
        provisionDevice(symmetricKeyRequest("prov-disabled", key, "https")),
        isProvisioningError("prov-disabled", /^DPS registration of "prov-disabled" failed: /),
      );
    });

    it("an untrusted server over amqp: the TLS reason the SDK leaves out is named", async () => {
      const key = enrolSymmetricKey("prov-untrusted");
      await assert.rejects(
        provisionDevice({ ...symmetricKeyRequest("prov-untrusted", key, "amqp"), ca: pki.caCert }),
        isProvisioningError(
          "prov-untrusted",
          /^DPS registration of "prov-untrusted" failed: the server's TLS certificate is not trusted \(.+\): check the trusted CA$/,
        ),
      );
    });

    it("amqp without a port: the reason names the default AMQPS port", async () => {
      await assert.rejects(
        provisionDevice({
          ...symmetricKeyRequest("prov-no-port", "a2V5", "amqp"),
          endpoint: "127.0.0.1",
        }),
        isProvisioningError(
          "prov-no-port",
          /^DPS registration of "prov-no-port" failed: nothing listens on 127\.0\.0\.1:5671 \(connection refused\)$/,
        ),
      );
    });
  });

  describe("a DPS that assigns no hub or no device id", () => {
    let server: HttpsServer;
    let port: number;
    let answer: Record<string, unknown> = {};

    before(async () => {
      server = createHttpsServer({ cert: pki.serverCert, key: pki.serverKey }, (request, response) => {
        request.resume();
        request.on("end", () => {
          response.writeHead(200, { "content-type": "application/json" });
          response.end(
            JSON.stringify({
              operationId: "op-1",
              status: "assigned",
              registrationState: { registrationId: "prov-nohub", status: "assigned", ...answer },
            }),
          );
        });
      });
      port = await listening(server);
    });

    after(() => server.close());

    const states: Array<[string, Record<string, unknown>]> = [
      ["no hub", { deviceId: "d" }],
      ["an empty hub", { assignedHub: "", deviceId: "d" }],
      ["a hub that is not text", { assignedHub: 7, deviceId: "d" }],
      ["no device id", { assignedHub: "hub.example" }],
      ["an empty device id", { assignedHub: "hub.example", deviceId: "" }],
      ["a device id that is not text", { assignedHub: "hub.example", deviceId: 7 }],
    ];
    for (const [what, state] of states) {
      it(what, async () => {
        answer = state;
        await assert.rejects(
          provisionDevice({
            endpoint: `127.0.0.1:${port}`,
            idScope: "0ne00000001",
            transport: "https",
            ca: pki.caCert,
            security: { kind: "symmetricKey", registrationId: "prov-nohub", deviceKey: "a2V5" },
            timeoutMs: TIMEOUT_MS,
          }),
          (error: Error) =>
            error instanceof ProvisioningError &&
            error.registrationId === "prov-nohub" &&
            error.message === 'DPS assigned "prov-nohub" no hub or device id',
        );
      });
    }

    it("both given: the identity", async () => {
      answer = { assignedHub: "hub.example", deviceId: "d-1" };
      assert.deepEqual(
        await provisionDevice({
          endpoint: `127.0.0.1:${port}`,
          idScope: "0ne00000001",
          transport: "https",
          ca: pki.caCert,
          security: { kind: "symmetricKey", registrationId: "prov-nohub", deviceKey: "a2V5" },
          timeoutMs: TIMEOUT_MS,
        }),
        { registrationId: "prov-nohub", assignedHub: "hub.example", deviceId: "d-1" },
      );
    });
  });

  describe("a DPS that never answers", () => {
    let server: TlsServer;
    let port: number;
    let accepted = 0;
    /** Connections the server accepted that are still open. */
    const open = new Set<Socket>();
    /** Connections on which the client sent something after the TLS handshake. */
    const talking = new Set<Socket>();
    const sockets: Socket[] = [];

    before(async () => {
      server = createTlsServer({ cert: pki.serverCert, key: pki.serverKey }, (socket) => {
        sockets.push(socket);
        socket.on("error", () => undefined);
        socket.once("data", () => talking.add(socket));
      });
      server.on("connection", (socket: Socket) => {
        accepted++;
        open.add(socket);
        socket.on("close", () => open.delete(socket));
      });
      port = await listening(server);
    });

    after(() => {
      for (const socket of sockets) socket.destroy();
      server.close();
    });

    const silent = (
      registrationId: string,
      extra: Partial<ProvisioningRequest> = {},
    ): ProvisioningRequest => ({
      endpoint: `127.0.0.1:${port}`,
      idScope: "0ne00000001",
      transport: "mqtt",
      ca: pki.caCert,
      security: { kind: "symmetricKey", registrationId, deviceKey: "a2V5" },
      timeoutMs: TIMEOUT_MS,
      ...extra,
    });

    it("times out as a ProvisioningError whose cause is the OperationTimeoutError", async () => {
      await assert.rejects(provisionDevice(silent("prov-slow", { timeoutMs: 300 })), (error: Error) => {
        assert.ok(error instanceof ProvisioningError);
        assert.equal(error.registrationId, "prov-slow");
        assert.ok(error.cause instanceof OperationTimeoutError, String(error.cause));
        assert.match(error.message, /^DPS registration of "prov-slow" failed: .*DPS registration/);
        return true;
      });
    });

    it("an abort during the registration rejects at once with SessionStoppedError", async () => {
      const controller = new AbortController();
      const before = accepted;
      const promise = provisionDevice(silent("prov-aborted", { signal: controller.signal }));
      await until(() => accepted > before, "the connection");
      controller.abort();
      await assert.rejects(promise, (error: Error) => {
        assert.ok(error instanceof SessionStoppedError);
        assert.match(error.message, /^DPS registration abandoned/);
        return true;
      });
      assert.equal(getEventListeners(controller.signal, "abort").length, 0);
    });

    /** Aborts once the server has the registration request, then waits for the connection to close. */
    async function abortedOnceSent(extra: Partial<ProvisioningRequest>): Promise<void> {
      const controller = new AbortController();
      const openBefore = new Set(open);
      const talkingBefore = talking.size;
      const promise = provisionDevice(silent("prov-aborted-late", { ...extra, signal: controller.signal }));
      await until(() => talking.size > talkingBefore, "the request");
      controller.abort();
      await assert.rejects(promise, SessionStoppedError);
      await until(
        () => [...open].every((socket) => openBefore.has(socket)),
        "the connection closed",
        CLOSED_WITHIN_MS,
      );
    }

    it("https: an abort once the request is out closes the connection", async () => {
      await abortedOnceSent({ transport: "https" });
    });

    it("amqp-ws through a proxy: an abort once the request is out closes the tunnel", async () => {
      const proxy = await connectProxy(port);
      try {
        await abortedOnceSent({
          transport: "amqp-ws",
          endpoint: "127.0.0.1",
          proxy: { host: "127.0.0.1", port: proxy.port },
        });
      } finally {
        proxy.close();
      }
    });

    // The SDK's cancel() leaves an AMQP or MQTT connect in progress open; provisionDevice ends the socket itself.
    for (const transport of ["amqp", "mqtt"] as const) {
      it(`${transport}: an abort once the request is out closes the connection`, async () => {
        await abortedOnceSent({ transport });
      });

      it(`${transport}: a time-out closes the connection`, async () => {
        const openBefore = new Set(open);
        const acceptedBefore = accepted;
        await assert.rejects(
          provisionDevice(silent("prov-slow-closed", { transport, timeoutMs: 3000 })),
          (error: Error) =>
            error instanceof ProvisioningError && error.cause instanceof OperationTimeoutError,
        );
        assert.ok(accepted > acceptedBefore, "the registration opened a connection before it timed out");
        await until(
          () => [...open].every((socket) => openBefore.has(socket)),
          "the connection closed",
          CLOSED_WITHIN_MS,
        );
      });
    }

    it("an abort before the start rejects with SessionStoppedError and opens no connection", async () => {
      const controller = new AbortController();
      controller.abort();
      const before = accepted;
      await assert.rejects(
        provisionDevice(silent("prov-pre-aborted", { signal: controller.signal })),
        SessionStoppedError,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(accepted, before);
    });
  });

  // Each test has its own relay, so they run side by side: each mostly waits for polls that must not come.
  describe(
    "a DPS that keeps answering assigning (the emulator's, Retry-After 1 s)",
    { concurrency: true },
    () => {
      const RETRY_AFTER_MS = 1_000;
      let dps: TestDps;
      let key: string;

      before(async () => {
        dps = await startTestDps({
          dps: { retryAfterSeconds: RETRY_AFTER_MS / 1000, extraAssigningPolls: 10_000 },
        });
        key = newSymmetricKey();
        dps.store.putIndividualEnrollment({
          registrationId: "prov-assigning",
          attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
        });
      });

      after(() => dps?.dispose());

      /** A TCP relay in front of one DPS port that notes when each connection opens and the client sends. */
      async function relay(targetPort: number) {
        const opened: number[] = [];
        const sent: number[] = [];
        const sockets: Socket[] = [];
        const server = createNetServer((client) => {
          opened.push(Date.now());
          const upstream = netConnect(targetPort, "127.0.0.1");
          client.on("data", () => sent.push(Date.now()));
          client.pipe(upstream).pipe(client);
          sockets.push(client, upstream);
          upstream.on("error", () => client.destroy());
          client.on("error", () => upstream.destroy());
        });
        const port = await listening(server);
        return {
          port,
          opened,
          /** The device has polled once: it sent again after waiting about Retry-After. */
          polled: () => sent.some((at, i) => i > 0 && at - sent[i - 1] >= RETRY_AFTER_MS * 0.7),
          close: () => {
            for (const socket of sockets) socket.destroy();
            server.close();
          },
        };
      }

      function assigningRequest(transport: "amqp" | "https" | "mqtt", port: number): ProvisioningRequest {
        return {
          endpoint: `127.0.0.1:${port}`,
          idScope: ID_SCOPE,
          transport,
          ca: dps.pki.caCert,
          security: { kind: "symmetricKey", registrationId: "prov-assigning", deviceKey: key },
          timeoutMs: TIMEOUT_MS,
        };
      }

      /** Any poll after the registration is abandoned opens a connection: ours are closed by then. */
      async function assertNoPollAfter(opened: number[], what: string): Promise<void> {
        const before = opened.length;
        await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS * 2.5));
        assert.equal(opened.length, before, `no poll reaches DPS after ${what}`);
      }

      // The SDK's cancel() stops only the transport, which the next poll connects again; provisionDevice makes a
      // cancelled transport refuse requests. Over MQTT, ending the idle connection must not end the process either.
      for (const transport of ["amqp", "https", "mqtt"] as const) {
        it(`${transport}: an abort while the device waits to poll again stops the polling`, async () => {
          const dpsPort = dps.dps.ports[transport]!;
          const entry = await relay(dpsPort);
          try {
            const controller = new AbortController();
            const promise = provisionDevice({
              ...assigningRequest(transport, entry.port),
              signal: controller.signal,
            });
            await until(entry.polled, "the first poll");
            // The poll's "assigning" comes back within milliseconds; the next poll is a second away.
            await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS * 0.3));
            controller.abort();
            await assert.rejects(promise, SessionStoppedError);
            await assertNoPollAfter(entry.opened, "the abort");
          } finally {
            entry.close();
          }
        });
      }

      it("mqtt: a time-out while the device waits to poll again stops the polling", async () => {
        const entry = await relay(dps.dps.ports.mqtt!);
        try {
          // Register at once, poll after 1 s, time out half a second later, before the second poll.
          await assert.rejects(
            provisionDevice({ ...assigningRequest("mqtt", entry.port), timeoutMs: RETRY_AFTER_MS * 1.5 }),
            (error: Error) =>
              error instanceof ProvisioningError && error.cause instanceof OperationTimeoutError,
          );
          assert.ok(entry.polled(), "the device polled before it timed out");
          await assertNoPollAfter(entry.opened, "the time-out");
        } finally {
          entry.close();
        }
      });
    },
  );

  describe("an AMQP server that closes each connection once TLS is up", () => {
    let server: TlsServer;
    let port: number;

    before(async () => {
      server = createTlsServer({ cert: pki.serverCert, key: pki.serverKey }, (socket) => {
        socket.on("error", () => undefined);
        socket.end();
      });
      port = await listening(server);
    });

    after(() => server.close());

    it("the SDK's error, described, when TLS itself is fine", async () => {
      await assert.rejects(
        provisionDevice({
          endpoint: `127.0.0.1:${port}`,
          idScope: "0ne00000001",
          transport: "amqp",
          ca: pki.caCert,
          security: { kind: "symmetricKey", registrationId: "prov-closed", deviceKey: "a2V5" },
          timeoutMs: TIMEOUT_MS,
        }),
        isProvisioningError("prov-closed", /^DPS registration of "prov-closed" failed: .*disconnected/),
      );
    });
  });

  describe("port 443 of a loopback address of the test's own (a silent TLS server)", () => {
    const HOST = "127.0.0.173";
    let server: TlsServer | undefined;
    let skipReason: string | undefined;
    let accepted = 0;
    const sockets: Socket[] = [];
    /** Connections the server accepted that are still open, and those on which the client sent something. */
    const open = new Set<Socket>();
    const talking = new Set<Socket>();

    before(async () => {
      const certificate = pki.issueServerCertForIp(HOST);
      server = createTlsServer({ ...certificate }, (socket) => {
        sockets.push(socket);
        socket.on("error", () => undefined);
        socket.once("data", () => talking.add(socket));
      });
      server.on("connection", (socket: Socket) => {
        accepted++;
        open.add(socket);
        socket.on("close", () => open.delete(socket));
      });
      await new Promise<void>((resolve) => {
        server!.once("error", (error: NodeJS.ErrnoException) => {
          skipReason = `cannot listen on ${HOST}:443 here (${error.code})`;
          resolve();
        });
        server!.listen(443, HOST, () => resolve());
      });
    });

    after(() => {
      for (const socket of sockets) socket.destroy();
      server?.close();
    });

    for (const transport of ["https", "amqp-ws"] as const) {
      it(`${transport} to a host without a port goes to 443`, async (t) => {
        if (skipReason) return t.skip(skipReason);
        const before = accepted;
        await assert.rejects(
          provisionDevice({
            endpoint: HOST,
            idScope: "0ne00000001",
            transport,
            ca: pki.caCert,
            security: { kind: "symmetricKey", registrationId: "prov-443", deviceKey: "a2V5" },
            timeoutMs: 1_000,
          }),
          (error: Error) =>
            error instanceof ProvisioningError && error.cause instanceof OperationTimeoutError,
        );
        assert.ok(accepted > before, `the ${transport} request reached ${HOST}:443`);
      });
    }

    // Without a proxy rhea holds only a WebSocket wrapper, which cannot end the socket: the agent must.
    const amqpWs = (extra: Partial<ProvisioningRequest>): ProvisioningRequest => ({
      endpoint: HOST,
      idScope: "0ne00000001",
      transport: "amqp-ws",
      ca: pki.caCert,
      security: { kind: "symmetricKey", registrationId: "prov-443-closed", deviceKey: "a2V5" },
      timeoutMs: TIMEOUT_MS,
      ...extra,
    });
    const closedSince = (openBefore: Set<Socket>) =>
      until(
        () => [...open].every((socket) => openBefore.has(socket)),
        "the connection closed",
        CLOSED_WITHIN_MS,
      );

    it("amqp-ws: an abort once the request is out closes the connection", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const controller = new AbortController();
      const openBefore = new Set(open);
      const talkingBefore = talking.size;
      const promise = provisionDevice(amqpWs({ signal: controller.signal }));
      await until(() => talking.size > talkingBefore, "the request");
      controller.abort();
      await assert.rejects(promise, SessionStoppedError);
      await closedSince(openBefore);
    });

    it("amqp-ws: a time-out closes the connection", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const openBefore = new Set(open);
      const acceptedBefore = accepted;
      await assert.rejects(
        provisionDevice(amqpWs({ timeoutMs: 1_000 })),
        (error: Error) => error instanceof ProvisioningError && error.cause instanceof OperationTimeoutError,
      );
      assert.ok(accepted > acceptedBefore, "the registration opened a connection before it timed out");
      await closedSince(openBefore);
    });
  });
});
