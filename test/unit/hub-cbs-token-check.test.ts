// CBS put-token validation of the emulated IoT Hub: every refusal reason and the host:port audience rule.
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { buildSasToken, encodeUriComponentStrict, hmacSha256 } from "../../src/common/sas.js";
import {
  checkPutToken,
  checkServicePutToken,
  type PutTokenContext,
  servedHubName,
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

describe("CBS put-token refusals name their reason", () => {
  const base = { operation: "put-token", type: "servicebus.windows.net:sastoken" };
  const refusal = (status: number, description: string) => ({ status, description });

  it("names the operation, the token type and the token's shape", async () => {
    const token = await buildSasToken("localhost/devices/d1", NOW_MS / 1000 + 60, (data) =>
      hmacSha256(Buffer.from(primaryKey, "base64"), data),
    );
    const name = "localhost%2Fdevices%2Fd1";
    assert.deepEqual(
      checkPutToken({ ...base, operation: "delete-token", name, token }, context),
      refusal(400, "Unsupported CBS operation."),
    );
    for (const type of ["jwt", 42, undefined]) {
      assert.deepEqual(
        checkPutToken({ ...base, type, name, token }, context),
        refusal(400, "Unsupported token type."),
      );
    }
    assert.equal(
      checkPutToken({ ...base, type: "azure-devices.net:sastoken", name, token }, context).status,
      200,
    );
    assert.deepEqual(
      checkPutToken({ ...base, name, token: undefined }, context),
      refusal(400, "The token must be a string."),
    );
    assert.deepEqual(
      checkPutToken({ ...base, name, token: "Bearer abc" }, context),
      refusal(401, "Malformed SharedAccessSignature token."),
    );
    const policyToken = await buildSasToken(
      "localhost/devices/d1",
      NOW_MS / 1000 + 60,
      (data) => hmacSha256(Buffer.from(primaryKey, "base64"), data),
      "device",
    );
    assert.deepEqual(
      checkPutToken({ ...base, name, token: policyToken }, context),
      refusal(401, "Shared access policy tokens are not accepted for device connections."),
    );
  });

  it("names an audience that does not match, is not a device, or is another hub", async () => {
    const mismatch = refusal(401, "The token audience does not match the request.");
    assert.deepEqual(await request("localhost/devices/d1", { name: "localhost%2Fdevices%2Fd2" }), mismatch);
    assert.deepEqual(
      await request("localhost/devices/d1", { name: "localhost%2Fdevices%2Fd%E0%A4%A" }),
      mismatch,
    );
    const token = await buildSasToken("localhost/devices/d1", NOW_MS / 1000 + 60, (data) =>
      hmacSha256(Buffer.from(primaryKey, "base64"), data),
    );
    assert.deepEqual(checkPutToken({ ...base, name: 7, token }, context), mismatch);
    // an audience sent as AMQP binary is not a string, even when its bytes spell the right one
    assert.deepEqual(
      checkPutToken({ ...base, name: Buffer.from("localhost%2Fdevices%2Fd1"), token }, context),
      mismatch,
    );
    const notDevice = refusal(401, "The token is not scoped to a device.");
    assert.deepEqual(await request("localhost/devices/d1/modules/m1"), notDevice);
    assert.deepEqual(await request("gateway/localhost/devices/d1"), notDevice);
    assert.deepEqual(await request("localhost/devices/"), notDevice);
    assert.deepEqual(
      await request("other.azure-devices.net/devices/d1"),
      refusal(401, "The token audience other.azure-devices.net is not this IoT hub."),
    );
  });

  it("names the device that is unknown, disabled or not a key device, then the expiry and the signature", async () => {
    assert.deepEqual(await request("localhost/devices/ghost"), refusal(404, "Device ghost not found."));
    assert.deepEqual(await request("localhost/devices/off"), refusal(401, "Device off is disabled."));
    assert.deepEqual(
      await request("localhost/devices/cert"),
      refusal(401, "Device cert does not use shared access keys."),
    );
    assert.deepEqual(
      await request("localhost/devices/d1", { expiry: NOW_MS / 1000 }),
      refusal(401, "The token has expired."),
      "a token that expires this very millisecond is expired",
    );
    assert.equal((await request("localhost/devices/d1", { expiry: NOW_MS / 1000 + 1 })).status, 200);
    assert.deepEqual(
      await request("localhost/devices/d1", { key: secondaryKey }),
      refusal(401, "The token signature is invalid."),
    );
  });
});

describe("served hub names", () => {
  const listener = { hostNames: ["Hub-B.Example", "localhost"], port: 15671 };

  it("matches a host name in any case and answers the name as configured", () => {
    assert.equal(servedHubName("hub-b.example", listener), "Hub-B.Example");
    assert.equal(servedHubName("HUB-B.EXAMPLE:15671", listener), "Hub-B.Example");
    assert.equal(servedHubName("localhost:15671", listener), "localhost");
  });

  it("takes a port only when it is this listener's, written whole", () => {
    for (const host of [
      "hub-b.example:5671",
      "hub-b.example:156710",
      "hub-b.example:15671x",
      "hub-b.example:",
      "other:15671",
    ]) {
      assert.equal(servedHubName(host, listener), undefined, host);
    }
  });
});

describe("service put-token refusals name their reason", () => {
  const policyKey = randomBytes(32).toString("base64");
  const serviceContext = {
    hostNames: ["localhost"],
    port: 15671,
    policies: [
      { keyName: "registryRead", key: randomBytes(32).toString("base64") },
      { keyName: "iothubowner", key: policyKey },
    ],
    nowMs: NOW_MS,
  };
  const sign = (key: string) => (data: Buffer) => hmacSha256(Buffer.from(key, "base64"), data);
  const check = (name: unknown, token: unknown, extra: Record<string, unknown> = {}) =>
    checkServicePutToken(
      { operation: "put-token", type: "servicebus.windows.net:sastoken", name, token, ...extra },
      serviceContext,
    );
  const refusal = (status: number, description: string) => ({ status, description });

  it("grants a known policy until the second its token expires", async () => {
    const expiry = NOW_MS / 1000 + 1;
    assert.deepEqual(
      check("localhost", await buildSasToken("localhost", expiry, sign(policyKey), "iothubowner")),
      {
        status: 200,
        description: "OK",
        hubHostName: "localhost",
        expiresAtMs: NOW_MS + 1000,
      },
    );
    assert.deepEqual(
      check("localhost", await buildSasToken("localhost", NOW_MS / 1000, sign(policyKey), "iothubowner")),
      refusal(401, "The token has expired."),
    );
  });

  it("names each reason to refuse", async () => {
    const good = await buildSasToken("localhost", NOW_MS / 1000 + 60, sign(policyKey), "iothubowner");
    assert.deepEqual(
      check("localhost", good, { operation: "get" }),
      refusal(400, "Unsupported CBS operation."),
    );
    assert.deepEqual(check("localhost", good, { type: "jwt" }), refusal(400, "Unsupported token type."));
    assert.deepEqual(check("localhost", good, { type: 1 }), refusal(400, "Unsupported token type."));
    assert.deepEqual(check("localhost", 5), refusal(400, "The token must be a string."));
    assert.deepEqual(check("localhost", "Bearer x"), refusal(401, "Malformed SharedAccessSignature token."));
    const noPolicy = await buildSasToken("localhost", NOW_MS / 1000 + 60, sign(policyKey));
    assert.deepEqual(check("localhost", noPolicy), refusal(401, "Malformed SharedAccessSignature token."));
    const mismatch = refusal(401, "The token audience does not match the request.");
    assert.deepEqual(check("localhost:15671", good), mismatch);
    assert.deepEqual(check(undefined, good), mismatch);
    assert.deepEqual(check(Buffer.from("localhost"), good), mismatch);
    assert.deepEqual(check("%E0%A4%A", good), mismatch);
    assert.deepEqual(
      check("other", await buildSasToken("other", NOW_MS / 1000 + 60, sign(policyKey), "iothubowner")),
      refusal(401, "The token audience other is not this IoT hub."),
    );
    assert.deepEqual(
      check("localhost", await buildSasToken("localhost", NOW_MS / 1000 + 60, sign(policyKey), "owner")),
      refusal(401, "Unknown shared access policy owner."),
    );
    assert.deepEqual(
      check(
        "localhost",
        await buildSasToken("localhost", NOW_MS / 1000 + 60, sign(policyKey), "registryRead"),
      ),
      refusal(401, "The token signature is invalid."),
    );
  });
});
