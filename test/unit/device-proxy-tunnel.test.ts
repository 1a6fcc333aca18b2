// The CONNECT tunnel agent against a small HTTP proxy on loopback (node:http's 'connect' event): the request it
// sends (target, Basic credentials only when configured), TLS end to end inside the tunnel (the target's
// certificate checked against the target, SNI for names only, bytes that come with the proxy's answer handed to
// TLS), one tunnel per request, and each failure named with its proxy, target and status.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createNetServer, connect as netConnect, type Socket } from "node:net";
import {
  createServer as createHttpsServer,
  request as httpsRequest,
  type AgentOptions,
  type RequestOptions,
} from "node:https";
import { createServer as createTlsServer } from "node:tls";
import { ProxyError, ProxyTunnelAgent, type ResolvedProxy } from "../../src/device/proxy.js";
import { createTestPki } from "../support/test-certs.js";

const pki = createTestPki();

async function listening(
  server: Server | ReturnType<typeof createNetServer>,
  address = "127.0.0.1",
): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return (server.address() as { port: number }).port;
}

/** A TLS server that answers "hello" and records the SNI it was sent. */
async function target({ cert = pki.serverCert, key = pki.serverKey } = {}): Promise<{
  port: number;
  servernames: string[];
  close: () => void;
}> {
  const servernames: string[] = [];
  const server = createTlsServer(
    {
      cert,
      key,
      SNICallback: (name, done) => {
        servernames.push(name);
        done(null, undefined);
      },
    },
    (socket) => socket.end("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"),
  );
  const port = await listening(server);
  return { port, servernames, close: () => server.close() };
}

/**
 * A CONNECT proxy: answers `status` (with `reason`, or none), and on 200 pipes the tunnel to the target it was
 * asked for, sending `early` bytes in the same write as its answer. Listens on `address`.
 */
async function proxy(
  status = 200,
  {
    reason = status === 200 ? "Connection established" : "Nope",
    early = Buffer.alloc(0),
    address = "127.0.0.1",
  } = {},
): Promise<{
  port: number;
  requests: Array<{ url: string | undefined; headers: IncomingMessage["headers"] }>;
  close: () => void;
}> {
  const requests: Array<{ url: string | undefined; headers: IncomingMessage["headers"] }> = [];
  const sockets: Socket[] = [];
  const server = createHttpServer();
  server.on("connect", (request: IncomingMessage, client: Socket, head: Buffer) => {
    requests.push({ url: request.url, headers: request.headers });
    sockets.push(client);
    const answer = `HTTP/1.1 ${status}${reason ? ` ${reason}` : ""}\r\n\r\n`;
    if (status !== 200) {
      client.end(answer);
      return;
    }
    const [host, port] = (request.url ?? "").split(/:(?=\d+$)/);
    const upstream = netConnect(Number(port), host.replace(/^\[|\]$/g, ""), () => {
      client.write(Buffer.concat([Buffer.from(answer), early]));
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    sockets.push(upstream);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  const port = await listening(server, address);
  return {
    port,
    requests,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** One HTTPS GET through the agent; resolves with the body, or rejects with what the agent gave. */
function get(
  agent: ProxyTunnelAgent,
  host: string,
  port: number,
  ca?: string,
  options: RequestOptions = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      { host, port, path: "/", agent, ...(ca ? { ca } : {}), ...options },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString()));
        response.on("end", () => resolve(body));
      },
    );
    request.on("error", reject);
    request.end();
  });
}

type Target = Awaited<ReturnType<typeof target>>;
type Proxy = Awaited<ReturnType<typeof proxy>>;

/** Runs `use` with an agent through the proxy to the target (defaults: both plain), then closes all three. */
async function throughTunnel(
  use: (agent: ProxyTunnelAgent, t: Target, p: Proxy) => Promise<void>,
  setup: { t?: Target; p?: Proxy; proxyHost?: string; tls?: AgentOptions } = {},
): Promise<void> {
  const t = setup.t ?? (await target());
  const p = setup.p ?? (await proxy());
  const agent = new ProxyTunnelAgent({ host: setup.proxyHost ?? "127.0.0.1", port: p.port }, setup.tls);
  try {
    await use(agent, t, p);
  } finally {
    agent.destroy();
    p.close();
    t.close();
  }
}

describe("proxy tunnel agent", () => {
  it("opens a CONNECT tunnel to the target and runs TLS inside it, with SNI for a host name", async () => {
    await throughTunnel(async (agent, t, p) => {
      assert.equal(await get(agent, "localhost", t.port, pki.caCert), "hello");
      assert.deepEqual(p.requests[0].url, `localhost:${t.port}`);
      assert.equal(p.requests[0].headers.host, `localhost:${t.port}`);
      assert.equal(p.requests[0].headers["proxy-authorization"], undefined);
      assert.deepEqual(t.servernames, ["localhost"]);
      assert.equal(agent.lastFailure, undefined);
      // An address: no SNI (Node refuses an IP there), still verified against the certificate's IP entry.
      assert.equal(await get(agent, "127.0.0.1", t.port, pki.caCert), "hello");
      assert.deepEqual(t.servernames, ["localhost"]);
    });
  });

  it("keeps certificate checks end to end: an untrusted target fails inside the tunnel", async () => {
    await throughTunnel(async (agent, t) => {
      await assert.rejects(get(agent, "localhost", t.port), /self.signed|unable to verify|certificate/i);
    });
  });

  it("sends Basic credentials only when configured, an absent half as empty", async () => {
    const t = await target();
    const p = await proxy();
    try {
      const cases: Array<[ResolvedProxy, string]> = [
        [{ host: "127.0.0.1", port: p.port, username: "plant", password: "s3cret:x" }, "plant:s3cret:x"],
        [{ host: "127.0.0.1", port: p.port, username: "plant" }, "plant:"],
        [{ host: "127.0.0.1", port: p.port, password: "only" }, ":only"],
      ];
      for (const [settings] of cases) {
        const agent = new ProxyTunnelAgent(settings);
        await get(agent, "localhost", t.port, pki.caCert);
        agent.destroy();
      }
      assert.deepEqual(
        p.requests.map((r) => r.headers["proxy-authorization"]),
        cases.map(([, credentials]) => `Basic ${Buffer.from(credentials).toString("base64")}`),
      );
    } finally {
      p.close();
      t.close();
    }
  });

  for (const [status, hint] of [
    [407, " (check the proxy user name and password)"],
    [401, " (check the proxy user name and password)"],
    [403, ""],
  ] as const) {
    it(`names a refused tunnel (${status}) with proxy, target and status${hint ? ", and the hint" : ""}`, async () => {
      const p = await proxy(status);
      try {
        const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: p.port });
        await assert.rejects(
          get(agent, "hub.example", 443),
          (e: unknown) =>
            e instanceof ProxyError &&
            e.name === "ProxyError" &&
            e.proxyStatus === status &&
            e.message ===
              `the HTTP proxy 127.0.0.1:${p.port} refused the tunnel to hub.example:443: ${status} Nope${hint}`,
        );
        assert.ok(agent.lastFailure instanceof ProxyError);
        assert.equal(agent.lastFailure.proxyStatus, status);
        agent.destroy();
      } finally {
        p.close();
      }
    });
  }

  it("names a proxy it cannot reach, and forgets the failure once a tunnel opens", async () => {
    const gone = createNetServer();
    const deadPort = await listening(gone);
    await new Promise<void>((resolve) => gone.close(() => resolve()));
    const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: deadPort });
    await assert.rejects(
      get(agent, "hub.example", 443),
      (e: unknown) =>
        e instanceof ProxyError &&
        e.proxyStatus === undefined &&
        e.message.startsWith(`cannot reach the HTTP proxy 127.0.0.1:${deadPort}: `) &&
        e.cause instanceof Error,
    );
    assert.ok(agent.lastFailure instanceof ProxyError);
    agent.destroy();

    const t = await target();
    const p = await proxy();
    try {
      const moved = new ProxyTunnelAgent({ host: "127.0.0.1", port: p.port });
      moved.lastFailure = new ProxyError("an earlier failure");
      await get(moved, "localhost", t.port, pki.caCert);
      assert.equal(moved.lastFailure, undefined);
      moved.destroy();
    } finally {
      p.close();
      t.close();
    }
  });

  it("writes an IPv6 proxy and target in brackets", async () => {
    const agent = new ProxyTunnelAgent({ host: "::1", port: 1 });
    // Nothing listens on port 1: the failure names both.
    await assert.rejects(
      get(agent, "::1", 8443),
      (e: unknown) =>
        e instanceof ProxyError && e.message.startsWith("cannot reach the HTTP proxy [::1]:1: "),
    );
    agent.destroy();
  });
  it("names a refusal that comes without a reason phrase by its status alone", async () => {
    const p = await proxy(403, { reason: "" });
    try {
      const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: p.port });
      await assert.rejects(
        get(agent, "hub.example", 443),
        (e: unknown) =>
          e instanceof ProxyError &&
          e.message === `the HTTP proxy 127.0.0.1:${p.port} refused the tunnel to hub.example:443: 403`,
      );
      agent.destroy();
    } finally {
      p.close();
    }
  });

  it("hands bytes that come with the proxy's answer to TLS: the target's alert ends the handshake", async () => {
    // A TLS record: fatal alert, handshake_failure. Were it dropped, the handshake with the target would succeed.
    await throughTunnel(
      async (agent, t) => {
        await assert.rejects(get(agent, "localhost", t.port, pki.caCert), /handshake failure|alert/i);
      },
      { p: await proxy(200, { early: Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]) }) },
    );
  });

  it("sends the request's own server name as SNI, and never an address", async () => {
    await throughTunnel(async (agent, t) => {
      // Reached by address, verified and named by the server name the request gives.
      assert.equal(await get(agent, "127.0.0.1", t.port, pki.caCert, { servername: "localhost" }), "hello");
      assert.deepEqual(t.servernames, ["localhost"]);
      assert.equal(await get(agent, "localhost", t.port, pki.caCert, { servername: "127.0.0.1" }), "hello");
      assert.deepEqual(t.servernames, ["localhost"]);
    });
  });

  it("checks the target's certificate against the target, not the proxy", async () => {
    // The certificate names 127.0.0.1 only; the proxy is reached at another loopback address.
    await throughTunnel(
      async (agent, t) => {
        assert.equal(await get(agent, "127.0.0.1", t.port, pki.caCert), "hello");
      },
      {
        t: await target(pki.issueServerCertForIp("127.0.0.1")),
        p: await proxy(200, { address: "127.0.0.57" }),
        proxyHost: "127.0.0.57",
      },
    );
  });

  it("applies its own TLS options (the trusted CA) inside the tunnel", async () => {
    await throughTunnel(
      async (agent, t) => {
        assert.equal(await get(agent, "localhost", t.port), "hello");
      },
      { tls: { ca: pki.caCert } },
    );
  });

  it("opens a tunnel of its own for each request, even to a target that keeps connections open", async () => {
    const server = createHttpsServer({ cert: pki.serverCert, key: pki.serverKey }, (_request, response) =>
      response.end("hello"),
    );
    const port = await listening(server);
    const p = await proxy();
    try {
      const agent = new ProxyTunnelAgent({ host: "127.0.0.1", port: p.port });
      assert.equal(await get(agent, "localhost", port, pki.caCert), "hello");
      assert.equal(await get(agent, "localhost", port, pki.caCert), "hello");
      assert.equal(p.requests.length, 2);
      agent.destroy();
    } finally {
      p.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
