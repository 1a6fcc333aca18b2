// Which proxy a connection takes: the configured URL (credentials from the configuration or the URL), or
// HTTPS_PROXY / NO_PROXY; NO_PROXY entries by name, suffix, port and "*". Errors never quote the URL.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { bypasses, proxyFor } from "../../src/device/proxy.js";
import { ConfigurationError } from "../../src/device/errors.js";
import { sdkDependencies } from "../../src/device/dependencies.js";

describe("proxy selection", () => {
  it("takes the configured proxy, its port (80 when none) and credentials", () => {
    assert.deepEqual(
      proxyFor("hub.example", 443, { url: "http://proxy.plant:3128", username: "u", password: "p" }),
      {
        host: "proxy.plant",
        port: 3128,
        username: "u",
        password: "p",
      },
    );
    assert.deepEqual(proxyFor("hub.example", 443, { url: "proxy.plant" }), { host: "proxy.plant", port: 80 });
    assert.equal(proxyFor("hub.example", 443, undefined), undefined);
  });

  it("reads HTTPS_PROXY (or https_proxy) with credentials in the URL, and NO_PROXY (or no_proxy)", () => {
    const env = { https_proxy: "http://user%40plant:p%3Ass@10.0.0.1:8080", no_proxy: "dps.example" };
    assert.deepEqual(proxyFor("hub.example", 443, { fromEnvironment: true }, env), {
      host: "10.0.0.1",
      port: 8080,
      username: "user@plant",
      password: "p:ss",
    });
    assert.equal(proxyFor("dps.example", 443, { fromEnvironment: true }, env), undefined);
    assert.equal(proxyFor("hub.example", 443, { fromEnvironment: true }, {}), undefined);
    assert.equal(
      proxyFor(
        "hub.example",
        443,
        { fromEnvironment: true },
        { HTTPS_PROXY: "http://a:1", https_proxy: "http://b:2" },
      )?.host,
      "a",
    );
  });

  it("matches NO_PROXY entries by name, domain suffix, port and *", () => {
    assert.equal(bypasses("hub.azure-devices.net", 443, ["azure-devices.net"]), true);
    assert.equal(bypasses("hub.azure-devices.net", 443, [".azure-devices.net"]), true);
    assert.equal(bypasses("hub.azure-devices.net", 443, ["*.azure-devices.net"]), true);
    assert.equal(bypasses("notazure-devices.net", 443, ["azure-devices.net"]), false);
    assert.equal(bypasses("HUB.example", 443, ["hub.example:443"]), true);
    assert.equal(bypasses("hub.example", 443, ["hub.example:8883"]), false);
    assert.equal(bypasses("anything", 1, [" ", "*"]), true);
    assert.equal(bypasses("10.0.0.5", 443, ["10.0.0.5"]), true);
    assert.equal(bypasses("hub.example", 443, []), false);
  });

  it("refuses a proxy that is not http://, never quoting its URL", () => {
    for (const url of ["https://user:pw@proxy:3128", "socks5://user:pw@proxy:1080", "http://user:pw@[bad"]) {
      assert.throws(
        () => proxyFor("hub.example", 443, { url }),
        (error: Error) => error instanceof ConfigurationError && !error.message.includes("pw"),
      );
    }
  });
});

describe("proxy and transport", () => {
  const key = Buffer.alloc(32, 5).toString("base64");
  const identity = { assignedHub: "hub.example", deviceId: "dev-1" };

  for (const transport of ["amqp", "mqtt"] as const) {
    it(`a proxy that applies to the hub over plain ${transport} is a configuration error, before any socket`, async () => {
      const dependencies = sdkDependencies({
        hub: { transport, direct: { hostName: "hub.example", deviceId: "dev-1" } },
        proxy: { url: "http://proxy.plant:3128" },
        attestation: { kind: "symmetricKey", registrationId: "dev-1", key },
      });
      await assert.rejects(
        dependencies.connect(identity, new AbortController().signal),
        (error: Error) =>
          error instanceof ConfigurationError && error.message.includes(`carries only WebSocket`),
      );
    });
  }

  it("a host on the proxy's no-proxy list may use plain AMQP (it is reached directly)", () => {
    assert.equal(
      proxyFor("hub.example", 5671, { url: "http://proxy:3128", noProxy: ["hub.example"] }),
      undefined,
    );
  });
});
