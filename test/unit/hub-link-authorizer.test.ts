// Which device a link attach of the emulated hub may act for: an authorization already on the connection (a
// SAS token put over CBS while it lives, an X.509 match for good), or else the connection's client
// certificate, granted on the spot when it matches a registered device. The hub's endpoint calls this on every
// attach; here it is driven directly, with the real device store and connection registry.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { afterEach, describe, it, mock } from "node:test";
import type { Connection } from "rhea";
import {
  DeviceConnections,
  type Authorization,
  type ConnectionState,
  type PeerCertificateInfo,
} from "../../src/emulator/hub/device-connections.js";
import { DeviceStore } from "../../src/emulator/hub/device-store.js";
import { LinkAuthorizer } from "../../src/emulator/hub/link-authorization.js";
import { TimerSet } from "../../src/emulator/hub/timer-set.js";
import type { ConnectionEvent, HubDeviceRecord } from "../../src/emulator/hub/types.js";

const HUB_A = "hub-a.azure-devices.net";
const HUB_B = "hub-b.azure-devices.net";
const SHA1 = "A".repeat(40);
const SHA256 = "B".repeat(64);
const NOW = 1_800_000_000_000;

function selfSigned(hubHostName: string, deviceId: string): HubDeviceRecord {
  return {
    hubHostName,
    deviceId,
    status: "enabled",
    authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: SHA1 } },
  };
}

const peer: PeerCertificateInfo = { sha1: SHA1, sha256: SHA256, chainTrusted: false };

/** A hub serving `hostNames` with `devices` registered, and the connection events it reports. */
function hub(hostNames: string[], ...devices: HubDeviceRecord[]) {
  const store = new DeviceStore();
  for (const device of devices) store.upsert(device);
  const timers = new TimerSet();
  const events = new EventEmitter();
  const reported: ConnectionEvent[] = [];
  events.on("connection", (event: ConnectionEvent) => reported.push(event));
  const connections = new DeviceConnections(timers, events);
  const authorizer = new LinkAuthorizer(store, hostNames, connections);
  return { authorizer, connections, reported, timers };
}

/** A connection as the endpoint keeps it; the rhea connection is only the registry's key here. */
function connectionState(extra: Partial<ConnectionState> = {}): ConnectionState {
  return {
    connection: {} as Connection,
    authorizations: new Map(),
    links: new Map(),
    pendingCbsReplies: [],
    ...extra,
  };
}

describe("hub link authorizer", () => {
  afterEach(() => mock.timers.reset());

  it("keeps a SAS authorization while its token lives, up to the millisecond before it expires", () => {
    mock.timers.enable({ apis: ["Date"], now: NOW });
    const { authorizer, reported } = hub([HUB_A], selfSigned(HUB_A, "d1"));
    const sas: Authorization = { hubHostName: HUB_A, deviceId: "d1", method: "sas", expiresAtMs: NOW + 1 };
    const state = connectionState({ authorizations: new Map([["d1", sas]]), peer });
    assert.equal(authorizer.authorize(state, "d1"), sas);
    assert.deepEqual(reported, [], "an authorization already held is not granted again");
  });

  it("refuses a SAS authorization from the millisecond its token expires, even with a matching certificate", () => {
    mock.timers.enable({ apis: ["Date"], now: NOW });
    const { authorizer, reported } = hub([HUB_A], selfSigned(HUB_A, "d1"));
    const sas: Authorization = { hubHostName: HUB_A, deviceId: "d1", method: "sas", expiresAtMs: NOW };
    const state = connectionState({ authorizations: new Map([["d1", sas]]), peer });
    assert.equal(authorizer.authorize(state, "d1"), undefined);
    assert.equal(state.authorizations.get("d1"), sas, "the expired token is left for its expiry to revoke");
    assert.deepEqual(reported, []);
  });

  it("refuses a SAS authorization that carries no expiry", () => {
    const { authorizer } = hub([HUB_A]);
    const sas: Authorization = { hubHostName: HUB_A, deviceId: "d1", method: "sas" };
    assert.equal(
      authorizer.authorize(connectionState({ authorizations: new Map([["d1", sas]]) }), "d1"),
      undefined,
    );
  });

  it("keeps an X.509 authorization without an expiry, whatever the clock says", () => {
    mock.timers.enable({ apis: ["Date"], now: NOW });
    const { authorizer } = hub([HUB_A]);
    const x509: Authorization = { hubHostName: HUB_A, deviceId: "d1", method: "x509", expiresAtMs: NOW - 1 };
    const state = connectionState({ authorizations: new Map([["d1", x509]]) });
    assert.equal(authorizer.authorize(state, "d1"), x509);
    const withoutExpiry: Authorization = { hubHostName: HUB_A, deviceId: "d1", method: "x509" };
    assert.equal(
      authorizer.authorize(connectionState({ authorizations: new Map([["d1", withoutExpiry]]) }), "d1"),
      withoutExpiry,
    );
  });

  it("looks up only the device asked for: another device's authorization does not count", () => {
    mock.timers.enable({ apis: ["Date"], now: NOW });
    const { authorizer } = hub([HUB_A]);
    const other: Authorization = { hubHostName: HUB_A, deviceId: "d2", method: "x509" };
    const state = connectionState({ authorizations: new Map([["d2", other]]) });
    assert.equal(authorizer.authorize(state, "d1"), undefined);
  });

  it("grants a device its X.509 authorization when the connection's certificate matches it", () => {
    const { authorizer, connections, reported } = hub([HUB_A], selfSigned(HUB_A, "d1"));
    const state = connectionState({ peer });
    connections.add(state);
    const granted = authorizer.authorize(state, "d1");
    assert.deepEqual(granted, { hubHostName: HUB_A, deviceId: "d1", method: "x509" });
    assert.equal(state.authorizations.get("d1"), granted, "granted on this connection");
    assert.equal(connections.isConnected(HUB_A, "d1"), true);
    assert.deepEqual(reported, [{ hubHostName: HUB_A, deviceId: "d1", connected: true }]);
    assert.equal(authorizer.authorize(state, "d1"), granted, "the next attach finds the same authorization");
    assert.equal(reported.length, 1);
  });

  it("grants the device of the hub the connection named when several served hubs know it", () => {
    const { authorizer } = hub([HUB_A, HUB_B], selfSigned(HUB_A, "d1"), selfSigned(HUB_B, "d1"));
    const state = connectionState({ peer, openHostName: HUB_B });
    assert.equal(authorizer.authorize(state, "d1")?.hubHostName, HUB_B);
  });

  it("grants nothing without a client certificate, or for a certificate no registered device matches", () => {
    const { authorizer, reported } = hub([HUB_A], selfSigned(HUB_A, "d1"));
    const anonymous = connectionState();
    assert.equal(authorizer.authorize(anonymous, "d1"), undefined);
    assert.equal(anonymous.authorizations.size, 0);
    const stranger = connectionState({
      peer: { sha1: "C".repeat(40), sha256: "D".repeat(64), chainTrusted: true },
    });
    assert.equal(authorizer.authorize(stranger, "d1"), undefined);
    assert.equal(stranger.authorizations.size, 0);
    const otherDevice = connectionState({ peer });
    assert.equal(authorizer.authorize(otherDevice, "d2"), undefined);
    assert.equal(otherDevice.authorizations.size, 0);
    assert.deepEqual(reported, []);
  });
});
