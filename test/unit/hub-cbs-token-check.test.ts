// CBS put-token validation of the emulated IoT Hub: every refusal reason and the host:port audience rule.
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { buildSasToken, encodeUriComponentStrict, hmacSha256 } from "../../src/common/sas.js";
import {
  checkPutToken,
  checkServicePutToken,
  type PutTokenContext,
} from "../../src/emulator/hub/cbs-token-check.js";
import type { HubDeviceRecord } from "../../src/emulator/hub/types.js";

const NOW_MS = 1_800_000_000_000;
const primaryKey = randomBytes(32).toString("base64");
const secondaryKey = randomBytes(32).toString("base64");
const devices: HubDeviceRecord[] = [
  {
    hubHostName: "hub-a.azure-devices.net",
    deviceId: "d1",
    status: "enabled",
    authentication: { type: "sas", symmetricKey: { primaryKey, secondaryKey } },
  },
  {
    hubHostName: "localhost",
    deviceId: "d1",
    status: "enabled",
    authentication: { type: "sas", symmetricKey: { primaryKey } },
  },
  {
    hubHostName: "localhost",
    deviceId: "off",
    status: "disabled",
    authentication: { type: "sas", symmetricKey: { primaryKey } },
  },
  {
    hubHostName: "localhost",
    deviceId: "cert",
    status: "enabled",
    authentication: { type: "certificateAuthority" },
  },
];
const context: PutTokenContext = {
  hostNames: ["hub-a.azure-devices.net", "localhost"],
  port: 15671,
  nowMs: NOW_MS,
  findDevice: (hub, id) =>
    devices.find((d) => d.hubHostName.toLowerCase() === hub.toLowerCase() && d.deviceId === id),
};

async function request(
  resource: string,
  options: { key?: string; expiry?: number; name?: string; type?: string } = {},
) {
  const token = await buildSasToken(resource, options.expiry ?? NOW_MS / 1000 + 3600, (data) =>
    hmacSha256(Buffer.from(options.key ?? primaryKey, "base64"), data),
  );
  return checkPutToken(
    {
      operation: "put-token",
      type: options.type ?? "servicebus.windows.net:sastoken",
      name: options.name ?? encodeUriComponentStrict(resource),
      token,
    },
    context,
  );
}

describe("CBS put-token check", () => {
  it("accepts the primary and the secondary key and names the device and its hub", async () => {
    assert.deepEqual(await request("hub-a.azure-devices.net/devices/d1"), {
      status: 200,
      description: "OK",
      hubHostName: "hub-a.azure-devices.net",
      deviceId: "d1",
      expiresAtMs: NOW_MS + 3600_000,
    });
    assert.equal((await request("HUB-A.azure-devices.net/devices/d1", { key: secondaryKey })).status, 200);
  });

  it("accepts host:port only for this listener's port", async () => {
    const ok = await request("localhost:15671/devices/d1");
    assert.equal(ok.status, 200);
    assert.equal("hubHostName" in ok && ok.hubHostName, "localhost");
    assert.equal((await request("localhost:5671/devices/d1")).status, 401);
  });

  it("refuses a wrong key, an expired token, a foreign hub and a mismatched audience with 401", async () => {
    assert.equal((await request("localhost/devices/d1", { key: secondaryKey })).status, 401);
    assert.equal((await request("localhost/devices/d1", { expiry: NOW_MS / 1000 - 1 })).status, 401);
    assert.equal((await request("other.azure-devices.net/devices/d1")).status, 401);
    assert.equal((await request("localhost/devices/d1", { name: "localhost%2Fdevices%2Fd2" })).status, 401);
    assert.equal((await request("localhost/devices/d1/modules/m1")).status, 401);
  });

  it("answers 404 for an unknown device and 401 for a disabled or certificate-only one", async () => {
    assert.equal((await request("localhost/devices/ghost")).status, 404);
    assert.equal((await request("localhost/devices/off")).status, 401);
    assert.equal((await request("localhost/devices/cert")).status, 401);
  });

  it("refuses other operations, token types and malformed tokens without throwing", async () => {
    assert.equal((await request("localhost/devices/d1", { type: "jwt" })).status, 400);
    const base = { operation: "put-token", type: "servicebus.windows.net:sastoken", name: "x" };
    assert.equal(checkPutToken({ ...base, operation: "delete-token", token: "t" }, context).status, 400);
    assert.equal(checkPutToken({ ...base, token: 42 }, context).status, 400);
    assert.equal(
      checkPutToken({ ...base, token: "SharedAccessSignature sr=%E0%A4%A&sig=x&se=1" }, context).status,
      401,
    );
    assert.equal(checkPutToken({ ...base, token: "Bearer abc" }, context).status, 401);
  });
});

describe("service put-token (hub-scoped shared access policy)", () => {
  const policyKey = randomBytes(32).toString("base64");
  const serviceContext = {
    hostNames: ["hub-a.azure-devices.net", "localhost"],
    port: 15671,
    policies: [{ keyName: "iothubowner", key: policyKey }],
    nowMs: NOW_MS,
  };
  const policyToken = (resource: string, keyName: string, key: string, expiry = NOW_MS / 1000 + 600) =>
    buildSasToken(resource, expiry, (data) => hmacSha256(Buffer.from(key, "base64"), data), keyName);
  const serviceRequest = (name: string, token: string) => ({
    operation: "put-token",
    type: "servicebus.windows.net:sastoken",
    name,
    token,
  });

  it("grants a token for a served hub signed with a known policy, host:port audiences included", async () => {
    const ok = checkServicePutToken(
      serviceRequest("localhost:15671", await policyToken("localhost:15671", "iothubowner", policyKey)),
      serviceContext,
    );
    assert.equal(ok.status, 200);
    assert.equal((ok as { hubHostName: string }).hubHostName, "localhost");
  });

  it("refuses another key, an unknown policy, another hub, an expired token and a device token", async () => {
    const otherKey = randomBytes(32).toString("base64");
    const cases: Array<[string, string]> = [
      ["localhost", await policyToken("localhost", "iothubowner", otherKey)],
      ["localhost", await policyToken("localhost", "registryRead", policyKey)],
      ["other.azure-devices.net", await policyToken("other.azure-devices.net", "iothubowner", policyKey)],
      ["localhost", await policyToken("localhost", "iothubowner", policyKey, NOW_MS / 1000 - 1)],
    ];
    for (const [name, token] of cases) {
      assert.equal(checkServicePutToken(serviceRequest(name, token), serviceContext).status, 401, name);
    }
    const deviceToken = await buildSasToken("localhost", NOW_MS / 1000 + 600, (data) =>
      hmacSha256(Buffer.from(policyKey, "base64"), data),
    );
    assert.equal(checkServicePutToken(serviceRequest("localhost", deviceToken), serviceContext).status, 401);
  });
});
