// The hub's device and twin store: versions, etags and If-Match, service patches versus replacements,
// and validation of identity records.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
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

/** The reported `fw` of d1 as the data file holds it. */
function reportedOnDisk(file: string): unknown {
  const content = JSON.parse(readFileSync(file, "utf8")) as {
    devices: Array<{ twin: { reported: Record<string, unknown> } }>;
  };
  return content.devices[0].twin.reported.fw;
}

describe("hub device store", () => {
  it("writes a burst of changes to its file once, a moment later, and what is pending at flush", async () => {
    const dir = mkdtempSync(join(tmpdir(), "provisio-device-store-"));
    try {
      const file = join(dir, "hub.json");
      const store = new DeviceStore(file);
      store.upsert(device("d1"));
      store.patchReported(HUB, "d1", { fw: "1" });
      await sleep(300);
      assert.equal(reportedOnDisk(file), "1", "written without a flush, shortly after");
      const slow = new DeviceStore(file, 60_000);
      slow.load();
      // Reports in separate turns of the event loop, as a device sends them one after the other.
      for (let i = 2; i <= 20; i++) {
        slow.patchReported(HUB, "d1", { fw: String(i) });
        await nextTurn();
      }
      assert.equal(reportedOnDisk(file), "1", "not rewritten once per report");
      slow.flush();
      assert.equal(reportedOnDisk(file), "20");
      const reloaded = new DeviceStore(file);
      reloaded.load();
      assert.equal(reloaded.deviceTwinView(HUB, "d1")?.reported.fw, "20");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

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
