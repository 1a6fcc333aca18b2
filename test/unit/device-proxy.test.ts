// Which proxy a connection takes: the configured URL (credentials from the configuration or the URL), or
// HTTPS_PROXY / NO_PROXY; NO_PROXY entries by name, suffix, port, IPv6 address and "*". Errors never quote the URL.
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

  it("takes entries as written by people: spaces around, capitals, empty ones", () => {
    assert.equal(bypasses("hub.example", 443, ["  HUB.Example  "]), true);
    assert.equal(bypasses("hub.example", 443, [" Hub.Example:443 "]), true);
    // An empty entry (",," in the list) matches nothing, not even a name written with its final dot.
    assert.equal(bypasses("hub.example.", 443, ["", "other.example"]), false);
  });

  it("takes a port only as digits at the end of an entry", () => {
    assert.equal(bypasses("hub.example", 443, ["hub.example:443x"]), false);
    assert.equal(bypasses("hub.example", 443, ["hub.example:x443"]), false);
    assert.equal(bypasses("hub.example", 443, [":443"]), false);
  });

  it("matches IPv6 hosts (in brackets, as host:port gives them) by address, with or without a port", () => {
    assert.equal(bypasses("[::1]", 443, ["::1"]), true);
    assert.equal(bypasses("::1", 443, ["::1"]), true);
    assert.equal(bypasses("[::1]", 443, ["[::1]"]), true);
    assert.equal(bypasses("[::1]", 443, ["[::1]:443"]), true);
    assert.equal(bypasses("[::1]", 443, ["[::1]:8883"]), false);
    // A bare address whose last groups look like name:port is an address.
    assert.equal(bypasses("[fd00::1:443]", 443, ["fd00::1:443"]), true);
    assert.equal(bypasses("[fd00::443]", 443, ["fd00::"]), false);
    assert.equal(bypasses("[::2]", 443, ["::1", "[::1]:443"]), false);
  });

  it("takes a proxy URL with spaces around it, and a scheme only at its start", () => {
    assert.deepEqual(proxyFor("hub.example", 443, { url: "  http://proxy.plant:3128  " }), {
      host: "proxy.plant",
      port: 3128,
    });
    assert.deepEqual(proxyFor("hub.example", 443, { url: "proxy.plant:3128/via://x" }), {
      host: "proxy.plant",
      port: 3128,
    });
  });

  it("takes an IPv6 proxy without its brackets", () => {
    assert.deepEqual(proxyFor("hub.example", 443, { url: "http://[fd00::3]:3128" }), {
      host: "fd00::3",
      port: 3128,
    });
    assert.deepEqual(proxyFor("hub.example", 443, { fromEnvironment: true }, { HTTPS_PROXY: "[::1]:8080" }), {
      host: "::1",
      port: 8080,
    });
  });

  it("takes a blank proxy URL, configured or in HTTPS_PROXY, for no proxy", () => {
    assert.equal(proxyFor("hub.example", 443, { url: "   " }), undefined);
    assert.equal(proxyFor("hub.example", 443, { fromEnvironment: true }, { HTTPS_PROXY: " " }), undefined);
  });

  it("names what is wrong with a proxy URL", () => {
    assert.throws(
      () => proxyFor("hub.example", 443, { url: "http://user:pw@[bad" }),
      (error: Error) =>
        error instanceof ConfigurationError &&
        error.message === "the HTTP proxy is not a URL like http://proxy.example:3128",
    );
    assert.throws(
      () => proxyFor("hub.example", 443, { url: "https://user:pw@proxy:3128" }),
      (error: Error) =>
        error instanceof ConfigurationError &&
        error.message === "the HTTP proxy must be an http:// URL (not https://)",
    );
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
