// Device authentication on the hub transports that present credentials once per connection or request (MQTT
// CONNECT, the HTTPS Authorization header): a SAS token checked like a CBS put-token (audience with or without
// one of the hub's ports, device, expiry, signature, injected refusals), the token's device must be the one
// connecting; a client certificate matched like AMQP's; and which served hub a host name stands for.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import {
  checkDeviceCertificate,
  checkDeviceSasToken,
  servedHostName,
  type CredentialContext,
} from "../../src/emulator/hub/device-credentials.js";
import { DeviceConnections } from "../../src/emulator/hub/device-connections.js";
import { DeviceStore } from "../../src/emulator/hub/device-store.js";
import { FaultInjection } from "../../src/emulator/hub/fault-injection.js";
import { TimerSet } from "../../src/emulator/hub/timer-set.js";

const HUB = "Hub-A.azure-devices.net";
const OTHER_HUB = "hub-b.azure-devices.net";
const PORTS = [8883, 443];
const KEY = randomBytes(32);
const THUMBPRINT = "AB".repeat(20);

function context(): CredentialContext {
  const store = new DeviceStore();
  store.upsert({
    hubHostName: HUB,
    deviceId: "d1",
    status: "enabled",
    authentication: { type: "sas", symmetricKey: { primaryKey: KEY.toString("base64") } },
  });
  store.upsert({
    hubHostName: HUB,
    deviceId: "d2",
    status: "enabled",
    authentication: { type: "sas", symmetricKey: { primaryKey: KEY.toString("base64") } },
  });
  store.upsert({
    hubHostName: HUB,
    deviceId: "x1",
    status: "enabled",
    authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: THUMBPRINT } },
  });
  return {
    store,
    hostNames: [HUB, OTHER_HUB],
    ports: () => PORTS,
    faults: new FaultInjection(new DeviceConnections(new TimerSet(), new EventEmitter())),
  };
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

function token(audienceHost: string, deviceId: string, expiry = inAnHour(), key = KEY): Promise<string> {
  return buildSasToken(`${audienceHost}/devices/${deviceId}`, expiry, (data) => hmacSha256(key, data));
}

describe("hub device credentials (MQTT and HTTPS)", () => {
  it("takes a device's own SAS token, with the hub's name alone or with one of its ports, and says when it ends", async () => {
    const ctx = context();
    const expiry = inAnHour();
    for (const host of [HUB, HUB.toLowerCase(), `${HUB}:8883`, `${HUB}:443`]) {
      const check = checkDeviceSasToken(await token(host, "d1", expiry), "d1", ctx);
      assert.deepEqual(
        check,
        { ok: true, hubHostName: HUB, deviceId: "d1", method: "sas", expiresAtMs: expiry * 1000 },
        host,
      );
    }
  });

  it("refuses a token for a port the hub does not listen on, another hub's name, or a hub it does not serve", async () => {
    const ctx = context();
    for (const host of [`${HUB}:5671`, `${HUB}:1`, `${HUB}:`, "hub-c.azure-devices.net", `${OTHER_HUB}`]) {
      const check = checkDeviceSasToken(await token(host, "d1"), "d1", ctx);
      assert.equal(check.ok, false, host);
    }
  });

  it("refuses a token of another device, a wrong key, an expired or malformed token, each with its reason", async () => {
    const ctx = context();
    const other = checkDeviceSasToken(await token(HUB, "d2"), "d1", ctx);
    assert.deepEqual(other, { ok: false, reason: "The token is scoped to another device." });
    const wrongKey = checkDeviceSasToken(await token(HUB, "d1", inAnHour(), randomBytes(32)), "d1", ctx);
    assert.deepEqual(wrongKey, { ok: false, reason: "The token signature is invalid." });
    const expired = checkDeviceSasToken(
      await token(HUB, "d1", Math.floor(Date.now() / 1000) - 10),
      "d1",
      ctx,
    );
    assert.deepEqual(expired, { ok: false, reason: "The token has expired." });
    // A resource with no path: refused as not scoped to a device, not a crash.
    const hubOnly = await buildSasToken(HUB, inAnHour(), (data) => hmacSha256(KEY, data));
    assert.deepEqual(checkDeviceSasToken(hubOnly, "d1", ctx), {
      ok: false,
      reason: "The token is not scoped to a device.",
    });
    assert.deepEqual(checkDeviceSasToken("SharedAccessSignature nonsense", "d1", ctx), {
      ok: false,
      reason: "Malformed SharedAccessSignature token.",
    });
  });

  it("refuses as many tokens as fault injection asks, then takes them again", async () => {
    const ctx = context();
    ctx.faults.rejectNextTokens(2);
    const good = await token(HUB, "d1");
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(checkDeviceSasToken(good, "d1", ctx), {
        ok: false,
        reason: "Unauthorized (fault injection).",
      });
    }
    assert.equal(checkDeviceSasToken(good, "d1", ctx).ok, true);
  });

  it("matches a client certificate to the device connecting, and says what is missing otherwise", () => {
    const ctx = context();
    const peer = { sha1: THUMBPRINT, sha256: "CD".repeat(32), chainTrusted: false };
    assert.deepEqual(checkDeviceCertificate(peer, "x1", undefined, ctx), {
      ok: true,
      hubHostName: HUB,
      deviceId: "x1",
      method: "x509",
    });
    assert.deepEqual(checkDeviceCertificate(undefined, "x1", undefined, ctx), {
      ok: false,
      reason: "Neither a SAS token nor a client certificate was presented.",
    });
    assert.deepEqual(checkDeviceCertificate(peer, "d1", undefined, ctx), {
      ok: false,
      reason: "The client certificate does not authenticate d1.",
    });
    assert.deepEqual(checkDeviceCertificate({ ...peer, sha1: "EF".repeat(20) }, "x1", undefined, ctx), {
      ok: false,
      reason: "The client certificate does not authenticate x1.",
    });
  });

  it("names the served hub a host stands for: its name in any case, or name:port with one of the hub's ports", () => {
    const ctx = context();
    assert.equal(servedHostName(HUB, ctx), HUB);
    assert.equal(servedHostName("hub-a.AZURE-devices.net", ctx), HUB);
    assert.equal(servedHostName(`${HUB.toLowerCase()}:8883`, ctx), HUB);
    assert.equal(servedHostName(`${OTHER_HUB}:443`, ctx), OTHER_HUB);
    assert.equal(servedHostName(`${HUB}:5671`, ctx), undefined);
    assert.equal(servedHostName(`${HUB}8883`, ctx), undefined);
    assert.equal(servedHostName(`${HUB}:443x`, ctx), undefined);
    assert.equal(servedHostName("hub-c.azure-devices.net:443", ctx), undefined);
    assert.equal(servedHostName(`x${HUB}:443`, ctx), undefined);
  });
});
