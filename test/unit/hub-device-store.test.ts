// The hub's device and twin store: versions, etags and If-Match, service patches versus replacements,
// and validation of identity records.
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DeviceStore } from "../../src/emulator/hub/device-store.js";
import { HubServiceError } from "../../src/emulator/hub/errors.js";
import type { HubDeviceRecord } from "../../src/emulator/hub/types.js";

const HUB = "hub-a.azure-devices.net";
const device = (deviceId: string): HubDeviceRecord => ({
  hubHostName: HUB,
  deviceId,
  status: "enabled",
  authentication: { type: "sas", symmetricKey: { primaryKey: randomBytes(32).toString("base64") } },
});

describe("hub device store", () => {
  it("starts a twin at version 1 and counts desired, reported and whole-twin versions separately", () => {
    const store = new DeviceStore();
    store.upsert(device("d1"), { tags: { site: "a" }, properties: { desired: { interval: 5 } } });
    const created = store.twinDocument(HUB, "d1");
    assert.equal(created?.version, 1);
    assert.equal(created?.properties.desired.$version, 1);
    assert.equal(store.patchReported(HUB, "d1", { fw: "1" }), 2);
    const { document, change } = store.updateTwin(HUB, "d1", {
      properties: { desired: { interval: 7, $version: 99 } },
    });
    assert.deepEqual(change, { patch: { interval: 7 }, version: 2 });
    assert.equal(document.version, 3);
    assert.equal(document.etag, "AAAAAAAAAAM=");
    assert.deepEqual(store.deviceTwinView(HUB, "d1"), {
      desired: { interval: 7, $version: 2 },
      reported: { fw: "1", $version: 2 },
    });
  });

  it("honours If-Match: the current etag or * pass, a stale one fails with 412", () => {
    const store = new DeviceStore();
    store.upsert(device("d1"));
    const etag = store.twinDocument(HUB, "d1")?.etag;
    store.updateTwin(HUB, "d1", { tags: { a: 1 } }, etag);
    store.updateTwin(HUB, "d1", { tags: { b: 2 } }, "*");
    assert.throws(
      () => store.updateTwin(HUB, "d1", { tags: { c: 3 } }, etag),
      (error: unknown) => error instanceof HubServiceError && error.status === 412,
    );
    assert.deepEqual(store.twinDocument(HUB, "d1")?.tags, { a: 1, b: 2 });
  });

  it("pushes a replacement as the new desired document with removed keys set to null", () => {
    const store = new DeviceStore();
    store.upsert(device("d1"), { properties: { desired: { keep: 1, drop: 2 } } });
    const { change, document } = store.replaceTwin(HUB, "d1", { properties: { desired: { keep: 3 } } });
    assert.deepEqual(change, { patch: { keep: 3, drop: null }, version: 2 });
    assert.deepEqual(document.properties.desired, { keep: 3, $version: 2 });
    assert.deepEqual(document.tags, {});
  });

  it("answers 404 for unknown devices and 400 for invalid twins and identities", () => {
    const store = new DeviceStore();
    assert.throws(() => store.updateTwin(HUB, "ghost", {}), { status: 404, errorCode: "DeviceNotFound" });
    store.upsert(device("d1"));
    assert.throws(() => store.updateTwin(HUB, "d1", { tags: { "bad key": 1 } }), { status: 400 });
    assert.throws(() => store.upsert({ ...device("d1"), deviceId: "has/slash" }), { status: 400 });
    assert.throws(
      () =>
        store.upsert({
          ...device("d2"),
          authentication: { type: "sas", symmetricKey: { primaryKey: "not base64!" } },
        }),
      { status: 400 },
    );
    assert.throws(
      () =>
        store.upsert({
          ...device("d3"),
          authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: "1234" } },
        }),
      { status: 400 },
    );
    assert.equal(store.list().length, 1);
  });

  it("looks hub names up case-insensitively and device ids case-sensitively", () => {
    const store = new DeviceStore();
    store.upsert(device("Gateway"));
    assert.equal(store.get(HUB.toUpperCase(), "Gateway")?.deviceId, "Gateway");
    assert.equal(store.get(HUB, "gateway"), undefined);
    assert.equal(store.list("other.azure-devices.net").length, 0);
    assert.equal(store.delete(HUB, "Gateway"), true);
    assert.equal(store.delete(HUB, "Gateway"), false);
  });
});
