// The TLS diagnosis behind the SDK's opaque "connection disconnected": one handshake on loopback finds the real
// reason (an untrusted certificate, nothing listening, no TLS answer, another TLS failure), with SNI only for
// host names.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
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
