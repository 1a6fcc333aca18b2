// What the real dependencies do before and on the wire, against loopback servers of the test's own: the identity
// of a direct connection, the registration id, the proxy rules of each transport, the CA and client certificate
// a TLS server sees, the time limits, and the registration an HTTPS "DPS" receives. Nothing here reaches Azure.
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { createServer, type Server } from "node:net";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { createServer as createHttpsServer } from "node:https";
import { createTestPki } from "../support/test-certs.js";
import { sdkDependencies } from "../../src/device/dependencies.js";
import { ConfigurationError } from "../../src/device/errors.js";
import type { AttestationConfig, DeviceSessionConfig } from "../../src/device/config.js";

const key = Buffer.alloc(32, 3).toString("base64");
const dps = { idScope: "0ne00012345" };
const symmetric: AttestationConfig = { kind: "symmetricKey", registrationId: "dev-1", key };
const tpm: AttestationConfig = { kind: "tpm", connection: { kind: "device" } };

/** A loopback port nothing listens on: one the system gave out and that was closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("sdkDependencies before the network", () => {
  let port = 0;
  before(async () => {
    port = await closedPort();
  });
  const signal = new AbortController().signal;

  it("hands back a direct identity at once, the host name trimmed", async () => {
    const dependencies = sdkDependencies({
      hub: { direct: { hostName: " hub.example ", deviceId: "dev-1" } },
      attestation: symmetric,
    });
    assert.deepEqual(await dependencies.provision(signal), {
      registrationId: "dev-1",
      assignedHub: "hub.example",
      deviceId: "dev-1",
    });
    assert.equal(await dependencies.registrationId(), "dev-1");
    await dependencies.dispose();
  });

  it("names the configured TPM registration id without opening the TPM", async () => {
    const dependencies = sdkDependencies({ dps, attestation: { ...tpm, registrationId: "gw-7" } });
    assert.equal(await dependencies.registrationId(), "gw-7");
    await dependencies.dispose();
  });

  it("refuses to provision without DPS settings", async () => {
    const dependencies = sdkDependencies({ attestation: symmetric });
    await assert.rejects(dependencies.provision(signal), /dps settings are required/);
  });

  for (const attestation of [
    symmetric,
    { kind: "symmetricKey", registrationId: "dev-1", groupKey: key } as const,
  ]) {
    it(`${attestation.kind}${"groupKey" in attestation ? " (group)" : ""}: without a proxy plain AMQP dials the hub`, async () => {
      const dependencies = sdkDependencies({ dps, attestation });
      await assert.rejects(
        dependencies.connect({ assignedHub: `127.0.0.1:${port}`, deviceId: "dev-1" }, signal),
        (error: Error) => !(error instanceof ConfigurationError),
      );
    });
  }

  it("a proxy applies to the hub's default AMQP port: refused, naming the transport", async () => {
    const dependencies = sdkDependencies({
      dps,
      proxy: { url: "http://proxy.plant:3128", noProxy: ["other.example:5671"] },
      attestation: symmetric,
    });
    await assert.rejects(
      dependencies.connect({ assignedHub: "hub.example", deviceId: "dev-1" }, signal),
      (error: Error) =>
        error instanceof ConfigurationError &&
        error.message ===
          "an HTTP proxy carries only WebSocket: choose the amqp-ws or mqtt-ws hub transport, not amqp",
    );
  });

  it("a no-proxy entry for the hub's default AMQP port lets plain AMQP dial the hub", async () => {
    const dependencies = sdkDependencies({
      dps,
      proxy: { url: "http://proxy.plant:3128", noProxy: ["localhost:5671"] },
      attestation: symmetric,
      options: { connectTimeoutMs: 2_000 },
    });
    await assert.rejects(
      dependencies.connect({ assignedHub: "localhost", deviceId: "dev-1" }, signal),
      (error: Error) => !(error instanceof ConfigurationError),
    );
  });

  it("over amqp-ws a proxy that cannot be reached is the error, not the transport's", async () => {
    const dependencies = sdkDependencies({
      dps,
      hub: { transport: "amqp-ws" },
      proxy: { url: `http://127.0.0.1:${port}` },
      attestation: symmetric,
    });
    await assert.rejects(
      dependencies.connect({ assignedHub: "hub.example", deviceId: "dev-1" }, signal),
      (error: Error) =>
        error.name === "ProxyError" && error.message.startsWith("cannot reach the HTTP proxy"),
    );
  });
});

/** A loopback server that accepts connections and never answers. */
async function silentServer(): Promise<{ server: Server; port: number }> {
  const server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}

describe("sdkDependencies on the wire", () => {
  const pki = createTestPki();

  /** A TLS server on loopback that records the client certificate's CN of each handshake, then hangs up. */
  async function hub(): Promise<{ port: number; seen: string[]; close: () => void }> {
    const seen: string[] = [];
    const server = createTlsServer(
      { cert: pki.serverCert, key: pki.serverKey, requestCert: true, rejectUnauthorized: false },
      (socket: TLSSocket) => {
        const subject = socket.getPeerCertificate().subject as { CN?: string } | undefined;
        seen.push(subject?.CN ?? "(no certificate)");
        socket.destroy();
      },
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { port: (server.address() as { port: number }).port, seen, close: () => server.close() };
  }

  it("x509 with a passphrase: the hub's own CA is trusted and the decrypted key proves the certificate", async () => {
    const device = pki.issueClientCert("dev-1");
    const passphrase = "open sesame";
    const key = createPrivateKey(device.key)
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase })
      .toString();
    const server = await hub();
    try {
      const dependencies = sdkDependencies({
        hub: { direct: { hostName: `localhost:${server.port}`, deviceId: "dev-1" }, ca: pki.caCert },
        attestation: { kind: "x509", registrationId: "dev-1", cert: device.cert, key, passphrase },
      });
      const identity = await dependencies.provision(new AbortController().signal);
      await assert.rejects(dependencies.connect(identity, new AbortController().signal));
      assert.deepEqual(server.seen, ["dev-1"]);
    } finally {
      server.close();
    }
  });

  it("a symmetric key: the DPS settings' CA is trusted for the hub too", async () => {
    const server = await hub();
    try {
      const dependencies = sdkDependencies({ dps: { ...dps, ca: pki.caCert }, attestation: symmetric });
      await assert.rejects(
        dependencies.connect(
          { assignedHub: `localhost:${server.port}`, deviceId: "dev-1" },
          new AbortController().signal,
        ),
      );
      assert.deepEqual(server.seen, ["(no certificate)"]);
    } finally {
      server.close();
    }
  });

  it("gives up opening the hub connection after connectTimeoutMs", { timeout: 20_000 }, async () => {
    const { server, port } = await silentServer();
    try {
      const dependencies = sdkDependencies({
        hub: { direct: { hostName: `127.0.0.1:${port}`, deviceId: "dev-1" } },
        attestation: symmetric,
        options: { connectTimeoutMs: 300 },
      });
      await assert.rejects(
        dependencies.connect(
          { assignedHub: `127.0.0.1:${port}`, deviceId: "dev-1" },
          new AbortController().signal,
        ),
      );
    } finally {
      server.close();
    }
  });

  it("gives up a DPS registration after provisioningTimeoutMs", { timeout: 20_000 }, async () => {
    const { server, port } = await silentServer();
    try {
      const dependencies = sdkDependencies({
        dps: { ...dps, globalEndpoint: `127.0.0.1:${port}`, transport: "https" },
        attestation: symmetric,
        options: { provisioningTimeoutMs: 300 },
      });
      await assert.rejects(dependencies.provision(new AbortController().signal));
    } finally {
      server.close();
    }
  });

  it("provisions over AMQP by default, at the configured endpoint, with a group key's derived key", async () => {
    const port = await closedPort();
    const dependencies = sdkDependencies({
      dps: { ...dps, globalEndpoint: `127.0.0.1:${port}` },
      attestation: { kind: "symmetricKey", registrationId: "dev-1", groupKey: key },
    });
    await assert.rejects(dependencies.provision(new AbortController().signal), (error: Error) =>
      error.message.includes(`nothing listens on 127.0.0.1:${port} (connection refused)`),
    );
  });

  it("provisions over HTTPS when asked, with an X.509 certificate", async () => {
    const port = await closedPort();
    const device = pki.issueClientCert("dev-1");
    const dependencies = sdkDependencies({
      dps: { ...dps, globalEndpoint: `127.0.0.1:${port}`, transport: "https" },
      attestation: { kind: "x509", registrationId: "dev-1", cert: device.cert, key: device.key },
    });
    await assert.rejects(dependencies.provision(new AbortController().signal), (error: Error) =>
      error.message.includes(`ECONNREFUSED 127.0.0.1:${port}`),
    );
  });

  it("provisions over HTTPS through the proxy, unless the DPS host's port 443 is on the no-proxy list", async () => {
    const proxyPort = await closedPort();
    const config = (noProxy: string[]): DeviceSessionConfig => ({
      dps: { ...dps, globalEndpoint: "127.0.0.1", transport: "https" },
      proxy: { url: `http://127.0.0.1:${proxyPort}`, noProxy },
      attestation: symmetric,
    });
    await assert.rejects(
      sdkDependencies(config([])).provision(new AbortController().signal),
      (error: Error) => error.message.includes(`127.0.0.1:${proxyPort}`),
    );
    await assert.rejects(
      sdkDependencies(config(["127.0.0.1:443"])).provision(new AbortController().signal),
      (error: Error) => error.message.includes("127.0.0.1:443") && !error.message.includes(String(proxyPort)),
    );
  });
});

describe("sdkDependencies with a TPM", () => {
  /** A TPM simulator address where nothing listens: every use of the TPM fails, naming it. */
  async function unreachableTpm(): Promise<AttestationConfig & { kind: "tpm" }> {
    return { kind: "tpm", connection: { kind: "mssim", host: "127.0.0.1", port: await closedPort() } };
  }

  it("reads the registration id from the TPM when none is configured", async () => {
    const dependencies = sdkDependencies({ dps, attestation: await unreachableTpm() });
    await assert.rejects(dependencies.registrationId(), (error: Error) => error.name === "TpmError");
    await dependencies.dispose();
  });

  it("provisions with the TPM as the security device", async () => {
    const port = await closedPort();
    const dependencies = sdkDependencies({
      dps: { ...dps, globalEndpoint: `127.0.0.1:${port}` },
      attestation: { ...(await unreachableTpm()), registrationId: "gw-1" },
    });
    await assert.rejects(
      dependencies.provision(new AbortController().signal),
      (error: Error) =>
        error.name === "ProvisioningError" && error.message.includes("TpmError: TPM simulator"),
    );
    await dependencies.dispose();
  });

  it("signs the hub's token with the TPM", async () => {
    const port = await closedPort();
    const dependencies = sdkDependencies({
      dps,
      attestation: { ...(await unreachableTpm()), registrationId: "gw-1" },
    });
    await assert.rejects(
      dependencies.connect(
        { assignedHub: `127.0.0.1:${port}`, deviceId: "gw-1" },
        new AbortController().signal,
      ),
      (error: Error) => !(error instanceof ConfigurationError) && /credentials/.test(error.message),
    );
    await dependencies.dispose();
  });
});

describe("sdkDependencies: what DPS is sent over HTTPS", () => {
  const pki = createTestPki();

  /** An HTTPS "DPS" on loopback that records each request (path and JSON body) and answers 500. */
  async function dpsServer(): Promise<{
    port: number;
    requests: { url: string; body: unknown }[];
    close: () => void;
  }> {
    const requests: { url: string; body: unknown }[] = [];
    const server = createHttpsServer({ cert: pki.serverCert, key: pki.serverKey }, (request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        requests.push({
          url: request.url ?? "",
          body: JSON.parse(Buffer.concat(chunks).toString() || "null"),
        });
        response.writeHead(500, { "content-type": "application/json" }).end('{"message":"test"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { port: (server.address() as { port: number }).port, requests, close: () => server.close() };
  }

  async function registration(config: Partial<DeviceSessionConfig>, port: number): Promise<void> {
    const dependencies = sdkDependencies({
      dps: {
        idScope: " 0ne00012345 ",
        globalEndpoint: `localhost:${port}`,
        transport: "https",
        ca: pki.caCert,
      },
      attestation: symmetric,
      ...config,
    });
    await assert.rejects(dependencies.provision(new AbortController().signal));
  }

  it("registers at the trimmed ID scope, with the payload and the model id, or none at all", async () => {
    const server = await dpsServer();
    try {
      await registration(
        { provisioningPayload: { site: "north" }, modelId: "dtmi:com:example:Gw;1" },
        server.port,
      );
      await registration({ modelId: "dtmi:com:example:Gw;1" }, server.port);
      await registration({ provisioningPayload: { site: "north" } }, server.port);
      await registration({}, server.port);
      const sent = server.requests.map(({ url, body }) => ({
        path: url.split("?")[0],
        payload: (body as { payload?: unknown }).payload,
      }));
      const path = "/0ne00012345/registrations/dev-1/register";
      assert.deepEqual(sent, [
        { path, payload: { site: "north", modelId: "dtmi:com:example:Gw;1" } },
        { path, payload: { modelId: "dtmi:com:example:Gw;1" } },
        { path, payload: { site: "north" } },
        { path, payload: undefined },
      ]);
    } finally {
      server.close();
    }
  });
});
