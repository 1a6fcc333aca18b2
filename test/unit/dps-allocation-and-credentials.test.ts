import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { candidateHubs, chooseHub } from "../../src/emulator/dps/allocation.js";
import { AmqpFrameGuard } from "../../src/emulator/dps/amqp-frame-guard.js";
import { deriveDeviceKey, verifyRegistrationToken } from "../../src/emulator/dps/credentials.js";

const hubs = [
  { hostName: "a", allocationWeight: 2, latencyMs: 30 },
  { hostName: "b", allocationWeight: 1, latencyMs: 10 },
  { hostName: "c", applyAllocationPolicy: false, latencyMs: 1 },
];

describe("DPS allocation", () => {
  it("hashed allocation is stable per registration id and follows the weights", () => {
    const candidates = candidateHubs(hubs, {});
    assert.deepEqual(
      candidates.map((h) => h.hostName),
      ["a", "b"],
    );
    const picks = Array.from(
      { length: 300 },
      (_, i) => chooseHub("hashed", candidates, `device-${i}`)!.hostName,
    );
    const a = picks.filter((h) => h === "a").length;
    assert.ok(a > 150 && a < 250, `hub a got ${a} of 300 with weight 2 of 3`);
    assert.equal(
      chooseHub("hashed", candidates, "Device-7")!.hostName,
      chooseHub("hashed", candidates, "device-7")!.hostName,
    );
  });

  it("geoLatency picks the lowest latency, static the named hub, and named hubs override applyAllocationPolicy", () => {
    assert.equal(chooseHub("geoLatency", candidateHubs(hubs, {}), "x")!.hostName, "b");
    assert.equal(chooseHub("static", candidateHubs(hubs, { iotHubs: ["C"] }), "x")!.hostName, "c");
    assert.equal(chooseHub("static", candidateHubs(hubs, { iotHubHostName: "a" }), "x")!.hostName, "a");
    assert.equal(chooseHub("hashed", candidateHubs(hubs, { iotHubs: ["nowhere"] }), "x"), undefined);
  });
});

describe("DPS registration token check", () => {
  const key = Buffer.alloc(32, 9);
  const sign = (data: Buffer) => hmacSha256(key, data);
  const now = 1_800_000_000;

  it("accepts the SDK's raw-sr symmetric key token and the TPM's encoded-sr token", async () => {
    // Symmetric key SDK token: sr NOT url-encoded (docs/dps-protocol.md §6.1).
    const raw = `0ne00000001/registrations/dev-1`;
    const sig = encodeURIComponent(sign(Buffer.from(`${raw}\n${now + 60}`)).toString("base64"));
    const skToken = `SharedAccessSignature sr=${raw}&sig=${sig}&skn=registration&se=${now + 60}`;
    assert.deepEqual(verifyRegistrationToken(skToken, "0ne00000001", "dev-1", [key], now), {
      ok: true,
      value: 0,
    });
    const tpmToken = await buildSasToken(raw, now + 60, sign, "registration");
    assert.equal(
      verifyRegistrationToken(tpmToken, "0ne00000001", "DEV-1", [Buffer.alloc(32), key], now).ok,
      true,
    );
  });

  it("refuses expiry, audience, key name and signature mismatches with 401", async () => {
    const check = async (resource: string, expiry: number, keyName = "registration", signer = sign) => {
      const token = await buildSasToken(resource, expiry, signer, keyName);
      const result = verifyRegistrationToken(token, "0ne00000001", "dev-1", [key], now);
      assert.equal(result.ok, false);
      if (!result.ok) assert.equal(result.error.status, 401);
      return result.ok ? "" : result.error.message;
    };
    assert.match(await check("0ne00000001/registrations/dev-1", now), /expired/);
    assert.match(await check("0ne00000001/registrations/dev-2", now + 60), /audience/);
    assert.match(await check("0ne00000002/registrations/dev-1", now + 60), /audience/);
    assert.match(await check("0ne00000001/registrations/dev-1", now + 60, "owner"), /key name/);
    assert.match(
      await check("0ne00000001/registrations/dev-1", now + 60, "registration", (d) =>
        hmacSha256(Buffer.alloc(32), d),
      ),
      /signature/,
    );
    assert.equal(verifyRegistrationToken("Bearer nope", "0ne00000001", "dev-1", [key], now).ok, false);
  });

  it("names each refusal, tells which key signed, and accepts a token without a key name", async () => {
    const resource = "0ne00000001/registrations/dev-1";
    const verify = (token: string | undefined, keys = [key]) =>
      verifyRegistrationToken(token, "0ne00000001", "dev-1", keys, now);
    const messageOf = (result: ReturnType<typeof verifyRegistrationToken>) =>
      result.ok ? "accepted" : `${result.error.status} ${result.error.message}`;
    assert.equal(messageOf(verify(undefined)), "401 malformed SAS token");
    assert.equal(messageOf(verify("Bearer nope")), "401 malformed SAS token");
    assert.equal(
      messageOf(
        verify(await buildSasToken("0ne00000001/registrations/dev-2", now + 60, sign, "registration")),
      ),
      "401 SAS token audience does not match the registration",
    );
    assert.equal(
      messageOf(verify(await buildSasToken(resource, now, sign, "registration"))),
      "401 SAS token expired",
    );
    assert.equal(verify(await buildSasToken(resource, now + 1, sign, "registration")).ok, true);
    assert.equal(
      messageOf(verify(await buildSasToken(resource, now + 60, sign, "owner"))),
      "401 SAS token key name must be 'registration'",
    );
    assert.equal(
      messageOf(verify(await buildSasToken(resource, now + 60, sign, "registration"), [Buffer.alloc(32)])),
      "401 SAS token signature is not valid",
    );
    assert.deepEqual(verify(await buildSasToken(resource, now + 60, sign)), { ok: true, value: 0 });
    assert.deepEqual(
      verify(await buildSasToken(resource, now + 60, sign, "registration"), [Buffer.alloc(32), key]),
      { ok: true, value: 1 },
    );
  });

  it("checks the expiry against the clock when no time is given", async () => {
    const clock = Math.floor(Date.now() / 1000);
    const resource = "0ne00000001/registrations/dev-1";
    const live = await buildSasToken(resource, clock + 600, sign, "registration");
    const past = await buildSasToken(resource, clock - 600, sign, "registration");
    assert.equal(verifyRegistrationToken(live, "0ne00000001", "dev-1", [key]).ok, true);
    assert.equal(verifyRegistrationToken(past, "0ne00000001", "dev-1", [key]).ok, false);
  });

  it("derives group device keys as HMAC-SHA256(groupKey, registrationId)", () => {
    const groupKey = Buffer.alloc(64, 3).toString("base64");
    assert.equal(
      deriveDeviceKey(groupKey, "member"),
      hmacSha256(Buffer.alloc(64, 3), Buffer.from("member")).toString("base64"),
    );
  });
});

describe("AMQP frame guard", () => {
  const header = (id: number) => Buffer.from([0x41, 0x4d, 0x51, 0x50, id, 1, 0, 0]);
  const frame = (size: number) => {
    const f = Buffer.alloc(size);
    f.writeUInt32BE(size, 0);
    return f;
  };

  it("follows headers and frames split across chunks", () => {
    const guard = new AmqpFrameGuard(1024);
    const stream = Buffer.concat([header(3), frame(40), frame(500), header(0), frame(8), frame(1024)]);
    for (let at = 0; at < stream.length; at += 7) assert.equal(guard.feed(stream.subarray(at, at + 7)), true);
  });

  it("refuses an oversized or impossible frame size", () => {
    assert.equal(
      new AmqpFrameGuard(1024).feed(Buffer.concat([header(3), Buffer.from([0xff, 0xff, 0xff, 0xff])])),
      false,
    );
    assert.equal(new AmqpFrameGuard(1024).feed(Buffer.concat([header(0), Buffer.from([0, 0, 0, 2])])), false);
  });
});
