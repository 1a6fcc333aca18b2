// HubConnection on its own, with the unmodified azure-iot-device Client over real TLS: the emulator's hub on a
// loopback address of its own (Azure's ports, so the WebSocket transports reach it on 443) for each transport
// and credential kind, link losses, and TLS servers of the test's own for what the hub never shows: the bytes
// of an MQTT CONNECT, a hub that never answers, a refused socket.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { connect as netConnect, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errors } from "azure-iot-common";
import { Message } from "azure-iot-device";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import { HubConnection, type HubConnectOptions } from "../../src/device/hub-connection.js";
import type { IncomingMethodCall } from "../../src/device/method-dispatcher.js";
import type { IncomingCloudMessage } from "../../src/device/c2d-inbox.js";
import { OperationTimeoutError, SessionStoppedError } from "../../src/device/errors.js";
import { HUB_TRANSPORTS } from "../../src/device/config.js";
import { ProxyTunnelAgent } from "../../src/device/proxy.js";
import { TpmAuthenticationProvider } from "../../src/tpm/authentication-provider.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";
import { TcpProxy } from "../support/tcp-proxy.js";

/** This file's own address: the hub listens on Azure's ports 5671, 8883 and 443 there. */
const HUB_HOST = "127.0.0.171";
const WAIT_MS = 15_000;

function listening(server: Server | TlsServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What the process writes to stderr until `restore()`, still written through. */
function capturedStderr(): { printed: string[]; restore: () => void } {
  const printed: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array, ...rest: never[]) => {
    printed.push(String(chunk));
    return write(chunk, ...rest);
  };
  return { printed, restore: () => (process.stderr.write = write) };
}

/** What rhea prints of a connection ("[connection-1] disconnected …") when no one hears its event. */
const RHEA_PRINT = /\[connection-\d+\]/;

/**
 * The listeners on the SDK's objects for the events a connection listens to (the client, its transport and,
 * for AMQP, the rhea container): a closed connection must leave none of its own behind.
 */
function sdkListeners(connection: HubConnection): Record<string, number> {
  const client = (connection as unknown as { client: NodeJS.EventEmitter & { _transport: unknown } }).client;
  const transport = client._transport as NodeJS.EventEmitter & {
    _amqp?: { _rheaContainer?: NodeJS.EventEmitter };
  };
  const container = transport._amqp?._rheaContainer;
  return {
    "client disconnect": client.listenerCount("disconnect"),
    "transport disconnect": transport.listenerCount("disconnect"),
    "transport error": transport.listenerCount("error"),
    "transport twinDesiredPropertiesUpdate": transport.listenerCount("twinDesiredPropertiesUpdate"),
    "container error-indicated": container?.listenerCount("azure-iot-amqp-base:error-indicated") ?? 0,
    "container disconnected": container?.listenerCount("disconnected") ?? 0,
  };
}

describe("HubConnection", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let skipReason: string | undefined;
  let pki: TestPki;
  let devices = 0;
  const open: HubConnection[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-hub-connection-"));
    pki = createTestPki();
    try {
      emulator = await startEmulator({
        dataDir: join(dir, "emulator"),
        hubHost: HUB_HOST,
        hubHttpsPort: 443,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EADDRINUSE" && code !== "EADDRNOTAVAIL") throw error;
      skipReason = `cannot listen on ${HUB_HOST}:443 here (${code})`;
    }
  });

  after(async () => {
    for (const connection of open) await connection.close();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function hub(): string {
    return emulator!.endpoints.hub.hostName;
  }

  /** A new device with a symmetric key on the emulator's hub. */
  function sasDevice(): { deviceId: string; key: string } {
    devices += 1;
    const deviceId = `hub-conn-${devices}`;
    const key = Buffer.from(`key-of-${deviceId}-0123456789abcdef`).toString("base64");
    emulator!.hub.registry.upsertDevice({
      hubHostName: hub(),
      deviceId,
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    return { deviceId, key };
  }

  function options(extra: Partial<HubConnectOptions> = {}): HubConnectOptions {
    return { ca: emulator!.caPem, connectTimeoutMs: WAIT_MS, closeTimeoutMs: 5_000, ...extra };
  }

  async function openSas(extra: Partial<HubConnectOptions> = {}) {
    const device = sasDevice();
    const connection = await HubConnection.open(
      { assignedHub: hub(), deviceId: device.deviceId },
      { kind: "symmetricKey", key: device.key },
      options(extra),
    );
    open.push(connection);
    return { connection, ...device };
  }

  for (const transport of HUB_TRANSPORTS) {
    it(`over ${transport}: telemetry, the twin, desired patches, and a close that lets go of everything`, async (t) => {
      if (skipReason) return t.skip(skipReason);
      const { connection, deviceId } = await openSas({ transport });
      assert.ok(emulator!.hub.service.isConnected(hub(), deviceId));

      await connection.sendEvent(new Message(`hello over ${transport}`));
      const sent = emulator!.hub.service.recentTelemetry(hub(), deviceId);
      assert.deepEqual(
        sent.map((record) => record.body.toString()),
        [`hello over ${transport}`],
      );

      await connection.updateReported({ temperature: 21 });
      const twin = await connection.getTwin();
      assert.equal(twin.reported.temperature, 21);
      assert.equal(typeof twin.reported.$version, "number");
      assert.equal(typeof twin.desired.$version, "number");

      await connection.enableDesiredUpdates();
      const patches: Array<Record<string, unknown>> = [];
      connection.on("desired", (patch: Record<string, unknown>) => patches.push(patch));
      emulator!.hub.service.updateTwin(hub(), deviceId, { properties: { desired: { interval: 7 } } });
      await until(() => patches.length > 0, "the desired patch");
      assert.equal(patches[0]?.interval, 7);
      assert.equal(typeof patches[0]?.$version, "number");

      const disconnects: unknown[] = [];
      connection.on("disconnect", (error: Error | undefined) => disconnects.push(error));
      const listening = sdkListeners(connection);
      await connection.close();
      const amqp = transport.startsWith("amqp") ? 1 : 0;
      // Ours are gone; the SDK keeps one 'error' listener on its transport and, for AMQP, one on rhea's
      // error-indicated event; the rundown keeps its no-op on rhea's disconnected event.
      assert.deepEqual(sdkListeners(connection), {
        "client disconnect": 0,
        "transport disconnect": 0,
        "transport error": listening["transport error"] - 1,
        "transport twinDesiredPropertiesUpdate": 0,
        "container error-indicated": listening["container error-indicated"] - amqp,
        "container disconnected": amqp,
      });
      await until(() => !emulator!.hub.service.isConnected(hub(), deviceId), "the hub sees the device go");
      assert.equal(connection.listenerCount("desired"), 0);
      assert.equal(connection.listenerCount("disconnect"), 0);
      assert.deepEqual(disconnects, [], "a close is no lost connection");
      assert.equal(connection.close(), connection.close(), "one close, however often asked");
    });
  }

  for (const transport of ["amqp-ws", "mqtt-ws"] as const) {
    it(`over ${transport}, the WebSocket opens through the given agent (an HTTP proxy tunnel)`, async (t) => {
      if (skipReason) return t.skip(skipReason);
      const targets: string[] = [];
      const sockets: Socket[] = [];
      const proxyServer = createHttpServer();
      proxyServer.on("connect", (request: IncomingMessage, client: Socket) => {
        targets.push(request.url ?? "");
        const upstream = netConnect(443, HUB_HOST, () => {
          client.write("HTTP/1.1 200 Connection established\r\n\r\n");
          upstream.pipe(client).pipe(upstream);
        });
        sockets.push(client, upstream);
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
      });
      const port = await listening(proxyServer);
      const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port });
      try {
        const { connection } = await openSas({ transport, webSocketAgent: agent });
        await connection.sendEvent(new Message("proxied"));
        await connection.close();
        assert.ok(targets.length > 0, "the WebSocket went through the proxy");
        for (const target of targets) assert.equal(target, `${HUB_HOST}:443`);
      } finally {
        agent.destroy();
        for (const socket of sockets) socket.destroy();
        proxyServer.close();
      }
    });
  }

  it("an X.509 device connects with its certificate", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const deviceId = "hub-conn-x509";
    const device = pki.issueClientCert(deviceId, { selfSigned: true });
    emulator!.hub.registry.upsertDevice({
      hubHostName: hub(),
      deviceId,
      status: "enabled",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: device.thumbprint } },
    });
    const connection = await HubConnection.open(
      { assignedHub: hub(), deviceId },
      { kind: "x509", cert: device.cert, key: device.key },
      options(),
    );
    open.push(connection);
    await connection.sendEvent(new Message("x509"));
    assert.equal(emulator!.hub.service.recentTelemetry(hub(), deviceId).length, 1);
    await connection.close();
  });

  it("a TPM credential connects with tokens its signer makes", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const device = sasDevice();
    const signed: Buffer[] = [];
    // The hub holds the key the TPM's identity key carries; an HMAC with it is what the TPM would answer.
    const signer = {
      signWithIdentity: (data: Buffer) => {
        signed.push(data);
        return Promise.resolve(createHmac("sha256", Buffer.from(device.key, "base64")).update(data).digest());
      },
    };
    const connection = await HubConnection.open(
      { assignedHub: hub(), deviceId: device.deviceId },
      { kind: "tpm", signer },
      options(),
    );
    open.push(connection);
    await connection.sendEvent(new Message("tpm"));
    assert.ok(signed.length > 0);
    assert.match(
      signed[0].toString(),
      new RegExp(`^${HUB_HOST.replaceAll(".", "\\.")}%2Fdevices%2F${device.deviceId}\\n\\d+$`),
    );
    await connection.close();
  });

  it("a wrong key: open rejects with the hub's refusal and leaves no connection behind", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const device = sasDevice();
    const wrongKey = Buffer.from("not-the-key-of-this-device-0123").toString("base64");
    await assert.rejects(
      HubConnection.open(
        { assignedHub: hub(), deviceId: device.deviceId },
        { kind: "symmetricKey", key: wrongKey },
        options(),
      ),
      (error: Error) => /unauthori[sz]ed|not authorized/i.test(`${error.name} ${error.message}`),
    );
    assert.equal(emulator!.hub.service.isConnected(hub(), device.deviceId), false);
  });

  it("without the hub's CA, the TLS verification refuses the hub", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const device = sasDevice();
    await assert.rejects(
      HubConnection.open(
        { assignedHub: hub(), deviceId: device.deviceId },
        { kind: "symmetricKey", key: device.key },
        options({ ca: undefined, connectTimeoutMs: 5_000 }),
      ),
    );
    assert.equal(emulator!.hub.service.isConnected(hub(), device.deviceId), false);
  });

  it("direct methods and cloud messages reach the connection's events, answered and settled on it", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const { connection, deviceId } = await openSas();
    const calls: IncomingMethodCall[] = [];
    const messages: IncomingCloudMessage[] = [];
    connection.on("method", (call: IncomingMethodCall) => calls.push(call));
    connection.on("cloudMessage", (message: IncomingCloudMessage) => messages.push(message));
    await connection.enableMethods(["ping"]);
    connection.receiveCloudMessages();

    const answered = emulator!.hub.service.invokeMethod(hub(), deviceId, {
      methodName: "ping",
      payload: { n: 1 },
      responseTimeoutInSeconds: 10,
    });
    await until(() => calls.length > 0, "the method call");
    assert.equal(calls[0]?.methodName, "ping");
    assert.deepEqual(calls[0]?.payload, { n: 1 });
    await calls[0]?.respond(200, "pong");
    assert.deepEqual(await answered, { status: 200, payload: "pong" });

    emulator!.hub.service.sendCloudToDevice(hub(), deviceId, { body: "to the device", messageId: "c2d-1" });
    await until(() => messages.length > 0, "the cloud message");
    assert.equal(messages[0]?.body.toString(), "to the device");
    await messages[0]?.settle("complete");

    // A call held while the connection closes cannot be answered on it any more.
    const unanswered = emulator!.hub.service.invokeMethod(hub(), deviceId, {
      methodName: "ping",
      responseTimeoutInSeconds: 5,
    });
    unanswered.catch(() => undefined);
    await until(() => calls.length > 1, "the second method call");
    await connection.close();
    await assert.rejects(calls[1].respond(200, "late"), (error: Error) =>
      /cannot be answered: the connection it came on is gone/.test(error.message),
    );
  });

  it("a cloud message held across a lost connection cannot be settled on it", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const { connection, deviceId } = await openSas();
    const messages: IncomingCloudMessage[] = [];
    connection.on("cloudMessage", (message: IncomingCloudMessage) => messages.push(message));
    const disconnects: Array<Error | undefined> = [];
    connection.on("disconnect", (error: Error | undefined) => disconnects.push(error));
    connection.receiveCloudMessages();
    emulator!.hub.service.sendCloudToDevice(hub(), deviceId, { body: "held" });
    await until(() => messages.length > 0, "the cloud message");
    assert.equal(emulator!.hub.faults.detachLink(hub(), deviceId, "c2d"), true);
    await until(() => disconnects.length > 0, "disconnect");
    await assert.rejects(messages[0].settle("complete"), (error: Error) =>
      /cannot be settled \(complete\): the connection it came on is gone/.test(error.message),
    );
    await connection.close();
  });

  for (const transport of ["amqp", "mqtt"] as const) {
    it(`over ${transport}: a twin GET the hub refuses rejects with the hub's error; the connection stays usable`, async (t) => {
      if (skipReason) return t.skip(skipReason);
      const { connection } = await openSas({ transport });
      await connection.updateReported({ mode: "auto" });
      const disconnects: Array<Error | undefined> = [];
      connection.on("disconnect", (error: Error | undefined) => disconnects.push(error));
      emulator!.hub.faults.throttleTwinGetsNext(1);
      await assert.rejects(within(connection.getTwin(), "the refused twin GET"), (error: Error) => {
        assert.match(error.message, /Twin reads throttled: too many requests/);
        // Over AMQP the SDK keeps the error its twin client made of the hub's 429; MQTT keeps only the message.
        if (transport === "amqp")
          assert.equal((error as { amqpError?: Error }).amqpError?.name, "ThrottlingError");
        return true;
      });
      const twin = await within(connection.getTwin(), "the next twin GET");
      assert.equal(twin.reported.mode, "auto");
      assert.deepEqual(disconnects, [], "a refused request is no lost connection");
      await connection.close();
    });
  }

  describe("a lost connection", () => {
    for (const transport of ["amqp", "mqtt"] as const) {
      it(`over ${transport}: the hub dropping the socket is one 'disconnect' with an Error`, async (t) => {
        if (skipReason) return t.skip(skipReason);
        const { connection, deviceId } = await openSas({ transport });
        const disconnects: Array<Error | undefined> = [];
        connection.on("disconnect", (error: Error | undefined) => disconnects.push(error));
        assert.equal(emulator!.hub.faults.dropConnection(hub(), deviceId), true);
        await until(() => disconnects.length > 0, "disconnect");
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(disconnects.length, 1);
        assert.ok(disconnects[0] instanceof Error, String(disconnects[0]));
        await within(connection.close(), "close after a drop");
      });
    }

    for (const transport of ["amqp", "mqtt"] as const) {
      it(`over ${transport}: a lost or closed connection refuses the twin and telemetry at once, and does not connect again`, async (t) => {
        if (skipReason) return t.skip(skipReason);
        const { connection, deviceId } = await openSas({ transport });
        const disconnects: Array<Error | undefined> = [];
        connection.on("disconnect", (error: Error | undefined) => disconnects.push(error));
        const refused = async (state: RegExp) => {
          const operations: Array<[string, () => Promise<unknown>]> = [
            ["getTwin", () => connection.getTwin()],
            ["updateReported", () => connection.updateReported({ late: true })],
            ["sendEvent", () => connection.sendEvent(new Message("late"))],
            ["enableDesiredUpdates", () => connection.enableDesiredUpdates()],
          ];
          for (const [what, operation] of operations) {
            await assert.rejects(within(operation(), what), (error: Error) => {
              assert.equal(error.name, "NotConnectedError", `${what}: ${error.name}`);
              assert.match(error.message, state);
              return true;
            });
          }
          assert.equal(emulator!.hub.service.isConnected(hub(), deviceId), false, "connected again");
        };
        assert.equal(emulator!.hub.faults.dropConnection(hub(), deviceId), true);
        await until(() => disconnects.length > 0, "disconnect");
        await until(() => !emulator!.hub.service.isConnected(hub(), deviceId), "the hub sees the device go");
        await refused(/the IoT Hub connection was lost/);
        await connection.close();
        await refused(/the IoT Hub connection is closed/);
        assert.equal(emulator!.hub.service.recentTelemetry(hub(), deviceId).length, 0);
      });
    }

    it("over amqp: a twin link the hub detaches with an error is a 'disconnect' with that error", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const { connection, deviceId } = await openSas({ transport: "amqp" });
      await connection.enableDesiredUpdates();
      const disconnects: Array<Error | undefined> = [];
      connection.on("disconnect", (error: Error | undefined) => disconnects.push(error));
      assert.equal(emulator!.hub.faults.detachLink(hub(), deviceId, "twin"), true);
      await until(() => disconnects.length > 0, "disconnect");
      assert.equal(disconnects.length, 1);
      assert.ok(disconnects[0] instanceof Error, String(disconnects[0]));
      await within(connection.close(), "close after a detach");
    });
  });

  describe("each event by which the SDK reports a lost connection, fired on its own", () => {
    // A real loss (a dropped socket, a detached link) fires two or more of these at once, so the tests above
    // cannot show that each is heard. Here each is fired alone on the SDK's own objects of an open connection.
    type Source = "client" | "transport" | "container";
    const lostBy = async (source: Source, event: string, value: unknown) => {
      const { connection } = await openSas({ transport: "amqp" });
      const sdk = connection as unknown as {
        client: NodeJS.EventEmitter;
        transport: NodeJS.EventEmitter & { _amqp?: { _rheaContainer?: NodeJS.EventEmitter } };
      };
      const emitters: Record<Source, NodeJS.EventEmitter | undefined> = {
        client: sdk.client,
        transport: sdk.transport,
        container: sdk.transport._amqp?._rheaContainer,
      };
      const reported: Array<Error | undefined> = [];
      connection.on("disconnect", (error: Error | undefined) => reported.push(error));
      emitters[source]!.emit(event, value);
      emitters[source]!.emit(event, value);
      await connection.close();
      assert.equal(reported.length, 1, `${source} ${event}: one 'disconnect', however often the SDK says it`);
      return reported[0];
    };

    it("the client's disconnect, with the transport's error, its reason, or neither", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const transportError = new Error("socket gone");
      const reason = new Error("the reason");
      assert.equal(
        await lostBy("client", "disconnect", { transportObj: transportError, reason }),
        transportError,
      );
      assert.equal(await lostBy("client", "disconnect", { reason }), reason);
      assert.equal(await lostBy("client", "disconnect", { transportObj: "not an error" }), undefined);
      assert.equal(await lostBy("client", "disconnect", undefined), undefined);
    });

    it("the client's and the transport's error, the transport's disconnect, and a link detached with an error", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const error = new Error("lost");
      assert.equal(await lostBy("client", "error", error), error);
      assert.equal(await lostBy("transport", "error", error), error);
      assert.equal(await lostBy("transport", "disconnect", error), error);
      // A retryable one too: with NoRetry the client reports it instead of reconnecting on its own.
      const retryable = new errors.NotConnectedError("the link went away");
      assert.equal(await lostBy("transport", "disconnect", retryable), retryable);
      // Without an error the client, which listens before us, reports it first as its own disconnect.
      await lostBy("transport", "disconnect", undefined);
      assert.equal(await lostBy("container", "azure-iot-amqp-base:error-indicated", error), error);
      assert.equal(
        (await lostBy("container", "azure-iot-amqp-base:error-indicated", undefined))?.message,
        "IoT Hub detached a link",
      );
    });

    it("a desired patch that is not an object (a hub's JSON null) is not announced", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const { connection } = await openSas({ transport: "amqp" });
      const transport = (connection as unknown as { transport: NodeJS.EventEmitter }).transport;
      const announced: unknown[] = [];
      connection.on("desired", (patch: unknown) => announced.push(patch));
      for (const patch of [null, undefined, "text", 7, { interval: 5, $version: 2 }]) {
        transport.emit("twinDesiredPropertiesUpdate", patch);
      }
      assert.deepEqual(announced, [{ interval: 5, $version: 2 }]);
      await connection.close();
    });
  });

  describe("against a hub of its own behind a proxy of the test's own, which can hold the hub's answers", () => {
    const target = { host: "127.0.0.1", port: 0 };
    let proxy: TcpProxy;
    let ownHub: Hub;
    let hubName: string;
    let ownDevices = 0;

    before(async () => {
      // The proxy dials `target` at each connection, so the hub, named after the proxy's port, listens after it.
      proxy = await TcpProxy.start(target);
      hubName = `127.0.0.1:${proxy.port}`;
      ownHub = await startHub({
        host: "127.0.0.1",
        hostNames: [hubName],
        tls: { key: pki.serverKey, cert: pki.serverCert },
      });
      target.port = ownHub.port;
    });

    after(async () => {
      await proxy.close();
      await ownHub.close();
    });

    /** A device on the hub; its key also makes what the TPM would sign. */
    function ownDevice(): { deviceId: string; key: string } {
      ownDevices += 1;
      const deviceId = `hub-conn-proxied-${ownDevices}`;
      const key = Buffer.from(`key-of-${deviceId}-0123456789abcdef`).toString("base64");
      ownHub.registry.upsertDevice({
        hubHostName: hubName,
        deviceId,
        status: "enabled",
        authentication: { type: "sas", symmetricKey: { primaryKey: key } },
      });
      return { deviceId, key };
    }

    /** The network gives up on the connections the proxy held: each is reset, and new ones flow again. */
    function giveUp(): void {
      proxy.resetAll();
      proxy.heal();
    }

    it("a TPM credential's token renewal ends with a close the hub never answers", async () => {
      const { deviceId, key } = ownDevice();
      let signed = 0;
      const signer = {
        signWithIdentity: (data: Buffer) => {
          signed += 1;
          return Promise.resolve(createHmac("sha256", Buffer.from(key, "base64")).update(data).digest());
        },
      };
      const connection = await HubConnection.open(
        { assignedHub: hubName, deviceId },
        { kind: "tpm", signer },
        { ca: pki.caCert, connectTimeoutMs: WAIT_MS, closeTimeoutMs: 300 },
      );
      // A renewal every second (2 s tokens, renewed 1 s before they expire), as the SDK's tokenRenewal option sets it.
      const provider = (connection as unknown as { provider: TpmAuthenticationProvider }).provider;
      provider.setTokenRenewalValues(2, 1);
      proxy.partition();
      try {
        await connection.close();
        const signedAtClose = signed;
        // The SDK's own close, still waiting for the hub, would stop the renewal only after its 45 s rundown.
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        assert.equal(signed, signedAtClose, "no token signed after the close");
      } finally {
        giveUp();
      }
    });

    it("an SDK error that comes after a close the hub never answered is heard, not thrown", async () => {
      const { deviceId, key } = ownDevice();
      const connection = await HubConnection.open(
        { assignedHub: hubName, deviceId },
        { kind: "symmetricKey", key },
        { ca: pki.caCert, connectTimeoutMs: WAIT_MS, closeTimeoutMs: 300 },
      );
      connection.receiveCloudMessages();
      await connection.enableMethods(["ping"]);
      // Each 'error' the client emits, seen without listening to it (a listener would hear it for us).
      const client = (connection as unknown as { client: NodeJS.EventEmitter }).client;
      const lateErrors: unknown[] = [];
      const emit = client.emit.bind(client);
      client.emit = (event: string | symbol, ...args: unknown[]): boolean => {
        if (event === "error") lateErrors.push(args[0]);
        return emit(event, ...args);
      };
      // A message received shows the C2D link attached.
      const messages: IncomingCloudMessage[] = [];
      connection.on("cloudMessage", (message: IncomingCloudMessage) => messages.push(message));
      ownHub.service.sendCloudToDevice(hubName, deviceId, { body: "before the partition" });
      await until(() => messages.length > 0, "the cloud message");
      await messages[0].settle("complete");
      proxy.partition();
      // The close stops receiving: the SDK detaches its C2D link, and its rundown waits for the hub past the deadline.
      await within(connection.close(), "the close");
      // When the network gives up, the rundown forces that detach, and the SDK emits its failure on the client.
      giveUp();
      await until(() => lateErrors.length > 0, "the SDK's late error");
      assert.ok(lateErrors[0] instanceof Error, String(lateErrors[0]));
    });
  });

  describe("against TLS servers of the test's own", () => {
    let server: TlsServer;
    let port: number;
    const received: Buffer[] = [];
    const sockets: Socket[] = [];

    before(async () => {
      server = createTlsServer({ cert: pki.serverCert, key: pki.serverKey }, (socket) => {
        sockets.push(socket);
        socket.on("data", (chunk: Buffer) => received.push(chunk));
        socket.on("error", () => undefined);
      });
      port = await listening(server);
    });

    after(() => {
      for (const socket of sockets) socket.destroy();
      server.close();
    });

    const silentHub = (extra: Partial<HubConnectOptions>) =>
      HubConnection.open(
        { assignedHub: `127.0.0.1:${port}`, deviceId: "silent-dev" },
        { kind: "symmetricKey", key: Buffer.from("k".repeat(32)).toString("base64") },
        { ca: pki.caCert, connectTimeoutMs: WAIT_MS, closeTimeoutMs: 1_000, ...extra },
      );

    it("mqtt: the model id and product info go out in the CONNECT; a hub that never answers times out", async () => {
      received.length = 0;
      await assert.rejects(
        silentHub({
          transport: "mqtt",
          modelId: "dtmi:com:example:Gateway;1",
          productInfo: "plant-7-gateway",
          connectTimeoutMs: 1_500,
        }),
        (error: Error) => error instanceof OperationTimeoutError && /IoT Hub connect/.test(error.message),
      );
      const connect = Buffer.concat(received).toString("latin1");
      assert.match(connect, /model-id=dtmi:com:example:Gateway;1/);
      assert.match(connect, /plant-7-gateway/);
      assert.match(connect, /silent-dev/);
    });

    it("an abort during the connect rejects with SessionStoppedError", async () => {
      const controller = new AbortController();
      const connectionsBefore = sockets.length;
      const opening = silentHub({ transport: "amqp", signal: controller.signal });
      await until(() => sockets.length > connectionsBefore, "the connection");
      controller.abort();
      await assert.rejects(opening, SessionStoppedError);
    });

    /** Resolves when the server's side of a connection has closed; fails after `ms`. */
    const closedWithin = (socket: Socket | undefined, ms: number, what: string) =>
      new Promise<void>((resolve, reject) => {
        if (!socket) return reject(new Error(`no connection: ${what}`));
        if (socket.closed) return resolve();
        const timer = setTimeout(() => reject(new Error(`the socket is still open ${ms} ms ${what}`)), ms);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });

    for (const transport of ["amqp", "mqtt"] as const) {
      it(`${transport}: a connect given up, by its time-out or an abort, leaves no socket open`, async () => {
        const beforeTimeout = sockets.length;
        await assert.rejects(silentHub({ transport, connectTimeoutMs: 1_000 }), OperationTimeoutError);
        await closedWithin(sockets[beforeTimeout], 5_000, "after the time-out");
        const controller = new AbortController();
        const beforeAbort = sockets.length;
        const opening = silentHub({ transport, signal: controller.signal });
        await until(() => sockets.length > beforeAbort, "the connection");
        controller.abort();
        await assert.rejects(opening, SessionStoppedError);
        await closedWithin(sockets[beforeAbort], 5_000, "after the abort");
      });
    }

    it("amqp: a connect given up leaves no socket open even when the hub keeps its side of it open", async () => {
      // After our FIN this hub keeps its side open and writes on: a socket we only ended would stay open in this
      // process, half-closed; one destroyed answers with a reset, which closes the hub's side too.
      const peers: Socket[] = [];
      const halfOpenHub = createTlsServer(
        { cert: pki.serverCert, key: pki.serverKey, allowHalfOpen: true },
        (socket) => {
          peers.push(socket);
          socket.on("error", () => undefined);
          // A reset is noticed only by a write that follows it: write on until the socket closes.
          socket.on("end", () => {
            const writing = setInterval(() => socket.write("still here"), 100);
            socket.once("close", () => clearInterval(writing));
          });
          socket.resume();
        },
      );
      const halfOpenPort = await listening(halfOpenHub);
      try {
        await assert.rejects(
          HubConnection.open(
            { assignedHub: `127.0.0.1:${halfOpenPort}`, deviceId: "silent-dev" },
            { kind: "symmetricKey", key: Buffer.from("k".repeat(32)).toString("base64") },
            { transport: "amqp", ca: pki.caCert, connectTimeoutMs: 1_000, closeTimeoutMs: 1_000 },
          ),
          OperationTimeoutError,
        );
        await closedWithin(peers[0], 5_000, "after the time-out");
      } finally {
        for (const peer of peers) peer.destroy();
        halfOpenHub.close();
      }
    });

    it("amqp-ws: a connect given up, by its time-out or an abort, leaves no socket open, and rhea prints nothing", async () => {
      // The WebSocket reaches the silent server through a CONNECT proxy of the test's own, whatever port it names.
      const tunnels: Socket[] = [];
      const proxyServer = createHttpServer();
      proxyServer.on("connect", (_request: IncomingMessage, client: Socket) => {
        const upstream = netConnect(port, "127.0.0.1", () => {
          client.write("HTTP/1.1 200 Connection established\r\n\r\n");
          upstream.pipe(client).pipe(upstream);
        });
        tunnels.push(client, upstream);
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
      });
      const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: await listening(proxyServer) });
      const silentWebSocketHub = (extra: Partial<HubConnectOptions>) =>
        HubConnection.open(
          { assignedHub: "127.0.0.1", deviceId: "silent-dev" },
          { kind: "symmetricKey", key: Buffer.from("k".repeat(32)).toString("base64") },
          {
            transport: "amqp-ws",
            webSocketAgent: agent,
            ca: pki.caCert,
            connectTimeoutMs: WAIT_MS,
            closeTimeoutMs: 1_000,
            ...extra,
          },
        );
      const { printed, restore } = capturedStderr();
      try {
        const beforeTimeout = sockets.length;
        await assert.rejects(silentWebSocketHub({ connectTimeoutMs: 1_000 }), OperationTimeoutError);
        await closedWithin(sockets[beforeTimeout], 5_000, "after the time-out");
        const controller = new AbortController();
        const beforeAbort = sockets.length;
        const opening = silentWebSocketHub({ signal: controller.signal });
        await until(() => sockets.length > beforeAbort, "the connection");
        controller.abort();
        await assert.rejects(opening, SessionStoppedError);
        await closedWithin(sockets[beforeAbort], 5_000, "after the abort");
        await new Promise((resolve) => setTimeout(resolve, 200));
      } finally {
        restore();
        agent.destroy();
        for (const socket of tunnels) socket.destroy();
        proxyServer.close();
      }
      assert.deepEqual(
        printed.filter((text) => RHEA_PRINT.test(text)),
        [],
      );
    });

    it("mqtt-ws through a proxy where nothing listens: the real network error, not 'Not authorized'", async (t) => {
      if (skipReason) return t.skip(skipReason);
      const probe = createTlsServer();
      const deadPort = await listening(probe);
      await new Promise((resolve) => probe.close(resolve));
      const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: deadPort });
      const device = sasDevice();
      try {
        await assert.rejects(
          HubConnection.open(
            { assignedHub: hub(), deviceId: device.deviceId },
            { kind: "symmetricKey", key: device.key },
            options({ transport: "mqtt-ws", webSocketAgent: agent }),
          ),
          (error: Error) => {
            assert.doesNotMatch(`${error.name} ${error.message}`, /not authori[sz]ed|unauthori[sz]ed/i);
            return true;
          },
        );
      } finally {
        agent.destroy();
      }
    });

    it("amqp-ws through a proxy where nothing listens: open rejects, and rhea prints nothing to stderr", async () => {
      const probe = createTlsServer();
      const deadPort = await listening(probe);
      await new Promise((resolve) => probe.close(resolve));
      const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: deadPort });
      // The failed WebSocket reports an error and then its close: rhea tells of each, and the SDK, which lets go
      // of the connection at the first, hears only that one. rhea prints what no one hears.
      const { printed, restore } = capturedStderr();
      try {
        await assert.rejects(
          HubConnection.open(
            { assignedHub: HUB_HOST, deviceId: "nobody" },
            { kind: "symmetricKey", key: Buffer.from("k".repeat(32)).toString("base64") },
            {
              transport: "amqp-ws",
              webSocketAgent: agent,
              ca: pki.caCert,
              connectTimeoutMs: WAIT_MS,
              closeTimeoutMs: 1_000,
            },
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
      } finally {
        restore();
        agent.destroy();
      }
      assert.deepEqual(
        printed.filter((text) => RHEA_PRINT.test(text)),
        [],
      );
    });

    it("mqtt to a port where nothing listens: the real network error, not 'Not authorized'", async () => {
      const probe = createTlsServer();
      const freePort = await listening(probe);
      await new Promise((resolve) => probe.close(resolve));
      await assert.rejects(
        HubConnection.open(
          { assignedHub: `127.0.0.1:${freePort}`, deviceId: "nobody" },
          { kind: "symmetricKey", key: Buffer.from("k".repeat(32)).toString("base64") },
          { transport: "mqtt", ca: pki.caCert, connectTimeoutMs: WAIT_MS, closeTimeoutMs: 1_000 },
        ),
        (error: Error) => {
          assert.doesNotMatch(`${error.name} ${error.message}`, /not authori[sz]ed|unauthori[sz]ed/i);
          assert.match(
            `${error.message} ${String((error as { transportError?: unknown }).transportError)}`,
            /ECONNREFUSED/,
          );
          return true;
        },
      );
    });
  });
});
