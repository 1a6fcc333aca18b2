// The TLS diagnosis behind the SDK's opaque "connection disconnected": one handshake on loopback finds the real
// reason (an untrusted certificate, nothing listening, no TLS answer, another TLS failure), with SNI only for
// host names.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { connect as netConnect, createServer as createNetServer, type Server, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { createServer as createTlsServer } from "node:tls";
import { isOpaqueConnectionFailure, tlsProblem } from "../../src/device/tls-diagnosis.js";
import { createTestPki } from "../support/test-certs.js";

const pki = createTestPki();
const hasIpv6Loopback = Object.values(networkInterfaces()).some((addresses) =>
  addresses?.some((address) => address.internal && address.address === "::1"),
);

async function listening(server: Server, address = "127.0.0.1"): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return (server.address() as { port: number }).port;
}

async function closed(server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A TLS server with the test CA's certificate for localhost and 127.0.0.1; records the SNI it is sent. */
async function tlsServer(): Promise<{ port: number; servernames: unknown[]; server: Server }> {
  const servernames: unknown[] = [];
  const server = createTlsServer({
    cert: pki.serverCert,
    key: pki.serverKey,
    // Called only for a client that sends SNI; no context given: the server's own is used.
    SNICallback: (servername, done) => {
      servernames.push(servername);
      done(null, undefined);
    },
  });
  server.on("tlsClientError", () => undefined);
  return { port: await listening(server), servernames, server };
}

describe("TLS diagnosis", () => {
  it("finds no problem with the right CA, sending SNI for a host name and none for an address", async () => {
    const { port, servernames, server } = await tlsServer();
    try {
      assert.equal(await tlsProblem("localhost", port, pki.caCert), undefined);
      assert.equal(await tlsProblem("127.0.0.1", port, pki.caCert), undefined);
      assert.deepEqual(servernames, ["localhost"]);
    } finally {
      await closed(server);
    }
  });

  it(
    "takes an IPv6 address in brackets (as host:port gives it), with no SNI",
    {
      skip: hasIpv6Loopback ? false : "no IPv6 loopback on this machine",
    },
    async () => {
      const { cert, key } = pki.issueServerCertForIp("::1");
      const servernames: string[] = [];
      const server = createTlsServer({
        cert,
        key,
        SNICallback: (servername, done) => {
          servernames.push(servername);
          done(null, undefined);
        },
      });
      const port = await listening(server, "::1");
      try {
        assert.equal(await tlsProblem("[::1]", port, pki.caCert), undefined);
        assert.deepEqual(servernames, []);
      } finally {
        await closed(server);
      }
    },
  );

  it("names a host name that does not resolve", async () => {
    // Under .invalid (RFC 6761: never resolves), with an empty label, which the system resolver refuses itself
    // without asking a DNS server: the test needs no network.
    const host = "no-such-hub..invalid";
    assert.equal(await tlsProblem(host, 443, pki.caCert), `the host name ${host} is unknown`);
  });

  it("names an untrusted certificate when the CA is not given", async () => {
    const { port, server } = await tlsServer();
    try {
      const problem = await tlsProblem("localhost", port, undefined);
      assert.match(
        problem ?? "",
        /^the server's TLS certificate is not trusted \(.+\): check the trusted CA$/,
      );
    } finally {
      await closed(server);
    }
  });

  it("names a port nothing listens on", async () => {
    const server = createNetServer();
    const port = await listening(server);
    await closed(server);
    assert.equal(
      await tlsProblem("127.0.0.1", port, pki.caCert),
      `nothing listens on 127.0.0.1:${port} (connection refused)`,
    );
  });

  it("names a server that gives no TLS answer in time", async () => {
    const sockets: Socket[] = [];
    const server = createNetServer((socket) => sockets.push(socket));
    const port = await listening(server);
    try {
      assert.equal(
        await tlsProblem("127.0.0.1", port, pki.caCert, 50),
        `no TLS answer from 127.0.0.1:${port} within 50 ms`,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await closed(server);
    }
  });

  it("names another TLS failure with its host, port and reason", async () => {
    const server = createNetServer((socket) => socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const port = await listening(server);
    try {
      const problem = await tlsProblem("127.0.0.1", port, pki.caCert);
      assert.match(problem ?? "", new RegExp(`^TLS to 127\\.0\\.0\\.1:${port} failed: .+`));
      assert.doesNotMatch(problem ?? "", /not trusted/);
    } finally {
      server.close();
    }
  });
});

/** A CONNECT proxy that records each target and tunnels it to 127.0.0.1 on the target's port, or answers `refuse`. */
async function connectProxy(refuse?: number) {
  const targets: string[] = [];
  const sockets: Socket[] = [];
  const server = createHttpServer();
  server.on("connect", (request: IncomingMessage, client: Socket) => {
    targets.push(request.url ?? "");
    sockets.push(client);
    if (refuse) {
      client.end(`HTTP/1.1 ${refuse} Forbidden\r\n\r\n`);
      return;
    }
    const upstream = netConnect(Number(request.url?.split(":").pop()), "127.0.0.1", () => {
      client.write("HTTP/1.1 200 Connection established\r\n\r\n");
      upstream.pipe(client).pipe(upstream);
    });
    sockets.push(upstream);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  const port = await listening(server);
  return {
    proxy: { host: "127.0.0.1", port },
    targets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await closed(server);
    },
  };
}

describe("TLS diagnosis through an HTTP proxy", () => {
  it("goes through the tunnel: no problem with the right CA, the untrusted certificate without it", async () => {
    const { port, server } = await tlsServer();
    const tunnel = await connectProxy();
    try {
      assert.equal(await tlsProblem("localhost", port, pki.caCert, 5000, tunnel.proxy), undefined);
      assert.match(
        (await tlsProblem("localhost", port, undefined, 5000, tunnel.proxy)) ?? "",
        /^the server's TLS certificate is not trusted \(.+\): check the trusted CA$/,
      );
      assert.deepEqual(tunnel.targets, [`localhost:${port}`, `localhost:${port}`]);
    } finally {
      await tunnel.close();
      await closed(server);
    }
  });

  it("names the proxy that refuses the tunnel, and one nothing listens on", async () => {
    const refusing = await connectProxy(403);
    try {
      assert.match(
        (await tlsProblem("dps.example", 443, pki.caCert, 5000, refusing.proxy)) ?? "",
        new RegExp(
          `^the HTTP proxy 127\\.0\\.0\\.1:${refusing.proxy.port} refused the tunnel to dps\\.example:443: 403`,
        ),
      );
    } finally {
      await refusing.close();
    }
    const dead = createNetServer();
    const deadPort = await listening(dead);
    await closed(dead);
    assert.match(
      (await tlsProblem("dps.example", 443, pki.caCert, 5000, { host: "127.0.0.1", port: deadPort })) ?? "",
      new RegExp(`^cannot reach the HTTP proxy 127\\.0\\.0\\.1:${deadPort}: .*ECONNREFUSED`),
    );
  });

  it("names no TLS answer in time when the proxy never answers the CONNECT", async () => {
    const sockets: Socket[] = [];
    // Reads what comes (so that it sees the connection end) and never answers.
    const silent = createNetServer((socket) => sockets.push(socket.resume()));
    const port = await listening(silent);
    try {
      assert.equal(
        await tlsProblem("dps.example", 443, pki.caCert, 50, { host: "127.0.0.1", port }),
        "no TLS answer from dps.example:443 within 50 ms",
      );
      const [toProxy] = sockets;
      assert.ok(toProxy, "the probe asked the proxy for a tunnel");
      const closedSoon = await new Promise<boolean>((resolve) => {
        if (toProxy.closed) return resolve(true);
        const timer = setTimeout(() => resolve(false), 5000);
        toProxy.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      assert.ok(closedSoon, "the CONNECT the proxy never answered is given up, not left open");
    } finally {
      for (const socket of sockets) socket.destroy();
      await closed(silent);
    }
  });
});

describe("opaque connection failure", () => {
  it("is the SDK's NotConnectedError or a 'connection disconnected' text, in any case", () => {
    const named = new Error("whatever");
    named.name = "NotConnectedError";
    assert.equal(isOpaqueConnectionFailure(named), true);
    assert.equal(isOpaqueConnectionFailure(new Error("rhea: Connection Disconnected")), true);
    assert.equal(isOpaqueConnectionFailure("rhea: connection disconnected"), true);
    assert.equal(isOpaqueConnectionFailure(new Error("unauthorized")), false);
    assert.equal(isOpaqueConnectionFailure("timeout"), false);
    assert.equal(isOpaqueConnectionFailure(undefined), false);
  });
});
