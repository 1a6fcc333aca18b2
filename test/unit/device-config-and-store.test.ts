import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkConfig } from "../../src/device/dependencies.js";
import { ConfigurationError, ValidationError } from "../../src/device/errors.js";
import { deriveDeviceKey } from "../../src/common/group-key.js";
import { splitHostPort } from "../../src/device/provisioning.js";
import { JsonFileRegistrationStore, MemoryRegistrationStore } from "../../src/device/registration-store.js";
import type { DeviceSessionConfig, DpsConfig } from "../../src/device/config.js";

const key = Buffer.alloc(32, 3).toString("base64");
const base: DeviceSessionConfig & { dps: DpsConfig } = {
  dps: { idScope: "0ne00012345" },
  attestation: { kind: "symmetricKey", registrationId: "dev-1", key },
};

describe("group key derivation", () => {
  it("is base64(HMAC-SHA256(group key, registration id)), as DPS derives it", () => {
    const groupKey = Buffer.alloc(64, 9).toString("base64");
    // computed independently (Python hmac) for this group key and registration id
    assert.equal(deriveDeviceKey(groupKey, "member-7"), "NMcLk20BFVfasFZy8h9mymRvTS3yYB1vmH9hLsQQKrY=");
    assert.notEqual(deriveDeviceKey(groupKey, "member-7"), deriveDeviceKey(groupKey, "member-8"));
  });
});

describe("configuration checks", () => {
  it("accepts a minimal symmetric key configuration", () => {
    assert.doesNotThrow(() => checkConfig(base));
  });

  it("refuses TPM over MQTT, host:port with AMQP over WebSockets, and bad ID scopes", () => {
    assert.throws(
      () =>
        checkConfig({
          ...base,
          dps: { ...base.dps, transport: "mqtt" },
          attestation: { kind: "tpm", connection: { kind: "device" } },
        }),
      (error: unknown) => error instanceof ConfigurationError && /mqtt/.test(error.message),
    );
    assert.throws(
      () =>
        checkConfig({
          ...base,
          dps: { ...base.dps, transport: "amqp-ws", globalEndpoint: "localhost:8443" },
        }),
      /always uses port 443/,
    );
    assert.throws(() => checkConfig({ ...base, dps: { idScope: "scope" } }), ValidationError);
  });

  it("refuses missing keys, certificates and unknown kinds", () => {
    assert.throws(
      () => checkConfig({ ...base, attestation: { kind: "symmetricKey", registrationId: "d", key: "" } }),
      /base64 key/,
    );
    assert.throws(
      () =>
        checkConfig({ ...base, attestation: { kind: "symmetricKey", registrationId: "d", groupKey: "" } }),
      /group key/,
    );
    assert.throws(
      () => checkConfig({ ...base, attestation: { kind: "x509", registrationId: "d", cert: "", key: "" } }),
      /certificate/,
    );
    assert.throws(
      () => checkConfig({ ...base, attestation: { kind: "psk" } as never }),
      /unknown attestation/,
    );
    assert.throws(
      () => checkConfig({ ...base, dps: { ...base.dps, transport: "coap" as never } }),
      /unknown DPS transport/,
    );
  });
});

describe("endpoint parsing", () => {
  it("splits host and optional port", () => {
    assert.deepEqual(splitHostPort("global.azure-devices-provisioning.net"), {
      host: "global.azure-devices-provisioning.net",
      port: undefined,
    });
    assert.deepEqual(splitHostPort("localhost:25671"), { host: "localhost", port: 25671 });
    assert.throws(() => splitHostPort("host:99999"), /out of range/);
    assert.throws(() => splitHostPort("a:b:c"), ConfigurationError);
  });
});

describe("registration stores", () => {
  let dir: string | undefined;
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const entry = {
    registrationId: "Dev-1",
    idScope: "0ne00012345",
    assignedHub: "hub.example:5671",
    deviceId: "dev-1",
  };

  it("memory store keeps copies per scope and registration id (case-insensitive)", async () => {
    const store = new MemoryRegistrationStore();
    await store.save(entry);
    assert.deepEqual(await store.load("dev-1", "0NE00012345"), entry);
    assert.equal(await store.load("dev-1", "0ne00099999"), undefined);
    await store.clear("DEV-1", "0ne00012345");
    assert.equal(await store.load("dev-1", "0ne00012345"), undefined);
  });

  it("JSON file store survives a new instance, holds no secret and is owner-only", async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-registration-store-"));
    const path = join(dir, "nested", "registrations.json");
    await new JsonFileRegistrationStore(path).save(entry);
    const reopened = new JsonFileRegistrationStore(path);
    assert.deepEqual(await reopened.load("dev-1", "0ne00012345"), entry);
    const text = await readFile(path, "utf8");
    assert.ok(!/key|sig=/i.test(text), text);
    assert.equal((await stat(path)).mode & 0o077, 0);
    await reopened.clear("dev-1", "0ne00012345");
    assert.equal(await new JsonFileRegistrationStore(path).load("dev-1", "0ne00012345"), undefined);
  });

  it("JSON file store treats a corrupt file as empty and can write over it", async () => {
    dir ??= await mkdtemp(join(tmpdir(), "provisio-registration-store-"));
    const path = join(dir, "corrupt.json");
    await writeFile(path, "{ not json");
    const store = new JsonFileRegistrationStore(path);
    assert.equal(await store.load("dev-1", "0ne00012345"), undefined);
    await store.save(entry);
    assert.deepEqual(await store.load("dev-1", "0ne00012345"), entry);
  });
});
