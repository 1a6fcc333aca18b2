// The twin query subset: what matches, precedence of AND over OR, types that do not compare, and queries
// outside the subset refused rather than answered wrongly.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DeviceQueryError, parseDeviceQuery } from "../../src/emulator/service-api/device-query.js";

const twin = (deviceId: string, extra: Record<string, unknown> = {}) => ({
  deviceId,
  status: "enabled",
  connectionState: "Disconnected",
  tags: { site: "lab", floor: 2 },
  properties: { desired: { mode: "eco" }, reported: { fw: "1.2" } },
  ...extra,
});

describe("device query subset", () => {
  it("matches everything without WHERE, and compares fields with literals", () => {
    assert.equal(parseDeviceQuery("select * from devices").matches(twin("a")), true);
    const query = parseDeviceQuery(
      "SELECT * FROM devices WHERE properties.reported.fw = '1.2' AND tags.floor > 1",
    );
    assert.equal(query.matches(twin("a")), true);
    assert.equal(query.matches(twin("b", { tags: { floor: 1 } })), false);
  });

  it("binds AND tighter than OR, and honours parentheses and NOT", () => {
    const loose = parseDeviceQuery(
      "SELECT * FROM devices WHERE deviceId = 'x' OR deviceId = 'a' AND status = 'disabled'",
    );
    assert.equal(loose.matches(twin("x")), true);
    assert.equal(loose.matches(twin("a")), false);
    const grouped = parseDeviceQuery(
      "SELECT * FROM devices WHERE (deviceId = 'x' OR deviceId = 'a') AND NOT status = 'disabled'",
    );
    assert.equal(grouped.matches(twin("a")), true);
  });

  it("does not compare values of different types, nor missing fields, even with !=", () => {
    const query = parseDeviceQuery("SELECT * FROM devices WHERE tags.floor != '2'");
    assert.equal(query.matches(twin("a")), false);
    assert.equal(
      parseDeviceQuery("SELECT * FROM devices WHERE tags.missing != 'x'").matches(twin("a")),
      false,
    );
  });

  it("reads quoted strings with doubled quotes and IN lists", () => {
    const query = parseDeviceQuery(`SELECT * FROM devices WHERE tags.site IN ['it''s', "lab"]`);
    assert.equal(query.matches(twin("a")), true);
    assert.equal(query.matches(twin("b", { tags: { site: "it's" } })), true);
  });

  it("refuses queries outside the subset", () => {
    for (const text of [
      "SELECT deviceId FROM devices",
      "SELECT * FROM devices.modules",
      "SELECT * FROM devices WHERE",
      "SELECT * FROM devices WHERE status = 'enabled' GROUP BY status",
      "SELECT * FROM devices WHERE status = 'unterminated",
    ]) {
      assert.throws(() => parseDeviceQuery(text), DeviceQueryError, text);
    }
  });
});
