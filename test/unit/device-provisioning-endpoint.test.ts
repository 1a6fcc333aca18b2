// splitHostPort, the DPS endpoint's "host[:port]" as the provisioning transports need it apart.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { splitHostPort } from "../../src/device/provisioning.js";
import { ConfigurationError } from "../../src/device/errors.js";

describe("splitHostPort", () => {
  it("keeps an IPv6 address in brackets, with and without a port", () => {
    assert.deepEqual(splitHostPort("[::1]:8443"), { host: "[::1]", port: 8443 });
    assert.deepEqual(splitHostPort("[fe80::1]"), { host: "[fe80::1]", port: undefined });
  });

  it("ignores spaces around the endpoint", () => {
    assert.deepEqual(splitHostPort("  dps.example:5671 \n"), { host: "dps.example", port: 5671 });
  });

  it("takes ports 1 to 65535 and refuses 0", () => {
    assert.deepEqual(splitHostPort("h:1"), { host: "h", port: 1 });
    assert.deepEqual(splitHostPort("h:65535"), { host: "h", port: 65535 });
    assert.throws(
      () => splitHostPort("h:0"),
      (error: Error) =>
        error instanceof ConfigurationError && error.message === 'port 0 in "h:0" is out of range',
    );
  });
});
