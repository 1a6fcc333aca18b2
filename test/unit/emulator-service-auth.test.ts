import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { authenticateServiceCall, type SharedAccessPolicy } from "../../src/emulator/service-api/auth.js";

const key = Buffer.alloc(32, 7).toString("base64");
const policy: SharedAccessPolicy = { hostNames: ["localhost:8443"], keyName: "iothubowner", key };
const now = 1_800_000_000;

function token(resource: string, signingKey: string, keyName: string | undefined, expiry = now + 3600) {
  return buildSasToken(
    resource,
    expiry,
    (data) => hmacSha256(Buffer.from(signingKey, "base64"), data),
    keyName,
  );
}

describe("service SAS authentication", () => {
  it("accepts a token signed with the policy key for the policy's host name", async () => {
    const result = authenticateServiceCall(await token("localhost:8443", key, "iothubowner"), [policy], now);
    assert.deepEqual(result, { hostName: "localhost:8443", keyName: "iothubowner" });
  });

  it("accepts a resource below the host name, case-insensitively", async () => {
    const result = authenticateServiceCall(
      await token("LOCALHOST:8443/devices/d1", key, "iothubowner"),
      [policy],
      now,
    );
    assert.ok("hostName" in result);
  });

  it("refuses a missing header, a malformed token, an expired token, a wrong key, name or host", async () => {
    const wrongKey = Buffer.alloc(32, 8).toString("base64");
    const refused = [
      undefined,
      "Bearer abc",
      await token("localhost:8443", key, "iothubowner", now - 1),
      await token("localhost:8443", wrongKey, "iothubowner"),
      await token("localhost:8443", key, "provisioningserviceowner"),
      await token("otherhost:8443", key, "iothubowner"),
      await token("localhost:84430", key, "iothubowner"),
    ];
    for (const header of refused) {
      const result = authenticateServiceCall(header, [policy], now);
      assert.ok(!("hostName" in result), `accepted ${String(header)}`);
      assert.equal(result.status, 401);
    }
  });

  it("does not reveal the key in the refusal", async () => {
    const result = authenticateServiceCall(
      await token("localhost:8443", Buffer.alloc(32, 9).toString("base64"), "iothubowner"),
      [policy],
      now,
    );
    assert.ok(!("hostName" in result));
    assert.ok(!result.message.includes(key));
  });
});
