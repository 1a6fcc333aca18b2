// Reading a device connection string for connecting without DPS: the three parts taken, everything else
// refused by name, and the key never in an error.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConnectionStringError, parseDeviceConnectionString } from "../../src/device/connection-string.js";
import { ConfigurationError } from "../../src/device/errors.js";

const key = "c2VjcmV0LWRldmljZS1rZXktMDEyMzQ1Njc4OWFiY2RlZg==";

describe("device connection string", () => {
  it("takes HostName, DeviceId and SharedAccessKey in any order and case, with spaces and a trailing ;", () => {
    assert.deepEqual(
      parseDeviceConnectionString(
        ` deviceid=press-1; SharedAccessKey=${key} ;HostName=plant.azure-devices.net;`,
      ),
      { hostName: "plant.azure-devices.net", deviceId: "press-1", sharedAccessKey: key },
    );
  });

  for (const [what, problem, text, pattern] of [
    ["empty", "empty", "  ", /is empty/],
    ["not pairs", "notPairs", "HostName=h;DeviceId=d;no-equals-sign-here", /not Name=value/],
    ["without a key", "missing", "HostName=h;DeviceId=d", /has no SharedAccessKey/],
    ["without host and device", "missing", `SharedAccessKey=${key}`, /has no HostName, DeviceId/],
    ["of a module", "moduleId", `HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=${key}`, /ModuleId/],
    [
      "with a signature",
      "signature",
      `HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=${key}`,
      /SharedAccessSignature/,
    ],
    ["of an X.509 device", "x509", "HostName=h;DeviceId=d;x509=true", /X\.509/],
    [
      "through IoT Edge",
      "edge",
      `HostName=h;DeviceId=d;SharedAccessKey=${key};GatewayHostName=edge`,
      /GatewayHostName/,
    ],
    [
      "of a hub policy",
      "hubPolicy",
      `HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=${key}`,
      /SharedAccessKeyName/,
    ],
  ] as const) {
    it(`refuses one ${what} as "${problem}", never quoting it`, () => {
      assert.throws(
        () => parseDeviceConnectionString(text),
        (error: Error) =>
          error instanceof ConnectionStringError &&
          error instanceof ConfigurationError &&
          error.problem === problem &&
          error.name === "ConnectionStringError" &&
          (problem === "missing" ? error.missing.length > 0 : error.missing.length === 0) &&
          pattern.test(error.message) &&
          !error.message.includes(key) &&
          (text.trim() === "" || !error.message.includes(text.trim())),
      );
    });
  }
});

describe("device connection string edges", () => {
  it("names the missing parts, in order", () => {
    assert.throws(
      () => parseDeviceConnectionString("DeviceId=d;x=y"),
      (error: Error) =>
        error instanceof ConnectionStringError && error.missing.join() === "HostName,SharedAccessKey",
    );
  });

  it("refuses what is not text as empty, with a ConfigurationError", () => {
    for (const value of [42, undefined, null, { HostName: "h" }]) {
      assert.throws(
        () => parseDeviceConnectionString(value),
        (error: Error) =>
          error instanceof ConfigurationError && error.message === "the device connection string is empty",
      );
    }
  });

  it("skips a part that is only spaces, and refuses a part with an empty name", () => {
    assert.deepEqual(
      parseDeviceConnectionString(`HostName=hub.example; ;DeviceId=dev-1;SharedAccessKey=${key}`),
      { hostName: "hub.example", deviceId: "dev-1", sharedAccessKey: key },
    );
    assert.throws(
      () => parseDeviceConnectionString(`=x;HostName=hub.example;DeviceId=dev-1;SharedAccessKey=${key}`),
      (error: Error) =>
        error instanceof ConfigurationError &&
        error.message === "the device connection string is not Name=value;… pairs",
    );
  });
});
