// DeviceSession over each hub transport (AMQP, AMQP over WebSocket, MQTT, MQTT over WebSocket) against the
// emulator in Azure's layout: the hub on a loopback address of its own with AMQP on 5671, MQTT on 8883 and
// WebSocket on 443, as the unmodified SDK dials them. Symmetric key, TPM (swtpm) and X.509 devices provision
// over DPS, then send telemetry and sync the twin; a hub restart is a lost connection on every transport.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import {
  DeviceSession,
  parseDeviceConnectionString,
  type DeviceSessionConfig,
  type HubTransportKind,
  type SessionState,
} from "../../src/device/index.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { establishedPortsTo } from "../support/tcp-connections.js";
import { createTestPki } from "../support/test-certs.js";
import { waitForSession, waitForState } from "../support/session-waits.js";

/** Addresses of this file's own: the hub's fixed ports (443, 5671, 8883) must not collide with other files. */
const HUB_HOST = "127.0.0.141";
const TRANSPORTS: readonly HubTransportKind[] = ["amqp", "amqp-ws", "mqtt", "mqtt-ws"];
/** The port each transport dials, as on Azure. */
const PORTS: Record<HubTransportKind, number> = { amqp: 5671, "amqp-ws": 443, mqtt: 8883, "mqtt-ws": 443 };

describe("device session over each hub transport", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let emulatorOptions: EmulatorOptions;
  let skipReason: string | undefined;
  const sessions: DeviceSession[] = [];
  const tpms: TestTpm[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-session-transports-"));
    emulatorOptions = { dataDir: join(dir, "emulator"), hubHost: HUB_HOST, hubHttpsPort: 443 };
    try {
      emulator = await startEmulator(emulatorOptions);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EADDRNOTAVAIL" && code !== "EPERM") throw error;
      skipReason = `cannot listen on ${HUB_HOST}:443/5671/8883 here (${code})`;
    }
    // A restart keeps DPS where the sessions know it.
    if (emulator) {
      const port = (endpoint: string): number => Number(endpoint.split(":").at(-1));
      emulatorOptions = { ...emulatorOptions, amqpPort: port(emulator.endpoints.dps.amqp) };
    }
  });

  after(async () => {
    for (const session of sessions) await session.close();
    for (const tpm of tpms) await tpm.dispose();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function running(): Emulator {
    if (!emulator) throw new Error("emulator not running");
    return emulator;
  }

  function sessionFor(
    transport: HubTransportKind,
    attestation: DeviceSessionConfig["attestation"],
  ): DeviceSession {
    const current = running();
    const session = new DeviceSession({
      dps: {
        globalEndpoint: current.endpoints.dps.amqp,
        idScope: current.idScope,
        transport: "amqp",
        ca: current.caPem,
      },
      hub: { transport },
      attestation,
      options: {
        backoff: { delayMs: () => 200 },
        twinTimeoutMs: 10_000,
        telemetryAckTimeoutMs: 10_000,
        connectTimeoutMs: 10_000,
      },
    });
    sessions.push(session);
    return session;
  }

  function recordedIds(deviceId: string): string[] {
    return running()
      .hub.service.recentTelemetry(HUB_HOST, deviceId)
      .map((record) => record.systemProperties.messageId ?? "");
  }

  describe("without DPS", () => {
    function directSession(
      transport: HubTransportKind,
      deviceId: string,
      attestation: DeviceSessionConfig["attestation"],
    ): DeviceSession {
      const session = new DeviceSession({
        hub: { transport, direct: { hostName: HUB_HOST, deviceId }, ca: running().caPem },
        attestation,
        options: { backoff: { delayMs: () => 200 }, twinTimeoutMs: 10_000, connectTimeoutMs: 10_000 },
      });
      sessions.push(session);
      return session;
    }

    for (const transport of ["amqp", "mqtt-ws"] as const) {
      it(`a device connection string connects over ${transport}; a disabled device is retried, not registered`, async (t) => {
        if (!emulator) return t.skip(skipReason);
        const deviceId = `cs-${transport}`;
        const key = Buffer.from(`direct-key-of-${deviceId}-0123456789`).toString("base64");
        const register = (status: "enabled" | "disabled"): void =>
          running().hub.registry.upsertDevice({
            hubHostName: HUB_HOST,
            deviceId,
            status,
            authentication: { type: "sas", symmetricKey: { primaryKey: key } },
          });
        register("disabled");
        const parsed = parseDeviceConnectionString(
          `HostName=${HUB_HOST};DeviceId=${deviceId};SharedAccessKey=${key}`,
        );
        const session = directSession(transport, parsed.deviceId, {
          kind: "symmetricKey",
          registrationId: parsed.deviceId,
          key: parsed.sharedAccessKey,
        });
        const states: SessionState[] = [];
        session.on("state", (event) => states.push(event.state));
        session.start();
        const refused = await waitForState(session, "retrying");
        assert.ok(refused.error, "the retry says why");
        assert.ok(!refused.error.includes(key), "never the key");
        register("enabled");
        const connected = await waitForState(session, "connected");
        assert.equal(connected.hub, HUB_HOST);
        assert.equal(connected.deviceId, deviceId);
        assert.equal(states.filter((state) => state === "provisioning").length, 1, states.join(" -> "));
        await session.sendTelemetry({ direct: true }, { messageId: "direct-1" });
        assert.deepEqual(recordedIds(deviceId), ["direct-1"]);
        const version = await session.reportProperties({ direct: transport });
        assert.equal(
          running().hub.service.getTwin(HUB_HOST, deviceId)?.properties.reported.$version,
          version,
        );
        await session.close();
      });
    }

    it("a hub host name + device id + self-signed X.509 certificate connects over mqtt", async (t) => {
      if (!emulator) return t.skip(skipReason);
      const deviceId = "x509-direct";
      const device = createTestPki().issueClientCert(deviceId, { selfSigned: true });
      emulator.hub.registry.upsertDevice({
        hubHostName: HUB_HOST,
        deviceId,
        status: "enabled",
        authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: device.thumbprint } },
      });
      const session = directSession("mqtt", deviceId, {
        kind: "x509",
        registrationId: deviceId,
        cert: device.cert,
        key: device.key,
      });
      const twin = waitForSession<Record<string, unknown>>(session, "twin", () => true, "twin");
      session.start();
      await waitForState(session, "connected");
      assert.equal(typeof (await twin).$version, "number");
      await session.sendTelemetry({ direct: "x509" }, { messageId: "direct-x509" });
      assert.deepEqual(recordedIds(deviceId), ["direct-x509"]);
      await session.close();
    });
  });

  for (const transport of TRANSPORTS) {
    describe(`over ${transport}`, () => {
      it("a symmetric-key device sends telemetry, syncs its twin and comes back after a hub restart with nothing lost", async (t) => {
        if (!emulator) return t.skip(skipReason);
        const registrationId = `sym-${transport}`;
        const key = Buffer.from(`key-of-${registrationId}-0123456789abcdef`).toString("base64");
        emulator.dps.store.putIndividualEnrollment({
          registrationId,
          attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
          initialTwin: { properties: { desired: { interval: 10 } } },
        });
        const session = sessionFor(transport, { kind: "symmetricKey", registrationId, key });
        const twin = waitForSession<Record<string, unknown>>(session, "twin", () => true, "twin");
        session.start();
        const connected = await waitForState(session, "connected");
        assert.equal(connected.hub, HUB_HOST);
        assert.equal((await twin).interval, 10);
        // The earlier tests closed their sessions: the one connection to the hub is this session's.
        assert.deepEqual(establishedPortsTo(HUB_HOST), [PORTS[transport]]);

        await session.sendTelemetry({ over: transport }, { messageId: "first", properties: { unit: "C" } });
        const [record] = emulator.hub.service.recentTelemetry(HUB_HOST, registrationId);
        assert.deepEqual(JSON.parse(record?.body.toString("utf8") ?? "null"), { over: transport });
        assert.equal(record?.properties.unit, "C");

        const first = await session.reportProperties({ transport });
        const second = await session.reportProperties({ nested: { ok: true } });
        assert.equal(second, first + 1);
        assert.deepEqual(emulator.hub.service.getTwin(HUB_HOST, registrationId)?.properties.reported, {
          transport,
          nested: { ok: true },
          $version: second,
        });
        assert.equal((await session.getTwin()).reported.transport, transport);

        const desired = waitForSession<Record<string, unknown>>(
          session,
          "desired",
          (patch) => patch.mode === "eco",
          "desired patch",
        );
        emulator.hub.service.updateTwin(HUB_HOST, registrationId, {
          properties: { desired: { mode: "eco" } },
        });
        assert.equal(typeof (await desired).$version, "number");

        // The hub goes away: the session notices on this transport, keeps telemetry and sends it after.
        const states: SessionState[] = [];
        session.on("state", (event) => states.push(event.state));
        const lost = waitForState(session, "disconnected");
        await emulator.close();
        emulator = undefined;
        await lost;
        const offline = [1, 2, 3].map((n) =>
          session.sendTelemetry(`offline-${n}`, { messageId: `offline-${n}` }),
        );
        emulator = await startEmulator(emulatorOptions);
        const twinAfter = waitForSession<Record<string, unknown>>(
          session,
          "twin",
          (document) => document.mode === "eco",
          "twin after the reconnect",
        );
        await Promise.all(offline);
        await twinAfter;
        assert.ok(!states.includes("provisioning"), `no new registration: ${states.join(" -> ")}`);
        assert.deepEqual(
          recordedIds(registrationId).filter((id) => id.startsWith("offline-")),
          ["offline-1", "offline-2", "offline-3"],
        );
        await session.close();
      });

      it("a TPM device (swtpm) connects with TPM-signed tokens, sends telemetry and reports", async (t) => {
        if (!emulator) return t.skip(skipReason);
        const tpm = await startTestTpm();
        tpms.push(tpm);
        const reader = new TpmSecurityClient(tpm.connection);
        const endorsementKey = await reader.getEndorsementKey();
        const registrationId = await reader.getRegistrationId();
        await reader.close();
        const deviceId = `tpm-${transport}`;
        emulator.dps.store.putIndividualEnrollment({
          registrationId,
          deviceId,
          attestation: { type: "tpm", tpm: { endorsementKey: endorsementKey.toString("base64") } },
        });
        const session = sessionFor(transport, { kind: "tpm", connection: tpm.connection });
        session.start();
        const connected = await waitForState(session, "connected");
        assert.equal(connected.deviceId, deviceId);
        await session.sendTelemetry({ attested: "tpm" }, { messageId: "tpm-1" });
        assert.deepEqual(recordedIds(deviceId), ["tpm-1"]);
        const version = await session.reportProperties({ attestation: "tpm", transport });
        assert.equal(emulator.hub.service.getTwin(HUB_HOST, deviceId)?.properties.reported.$version, version);
        await session.close();
      });

      it("an X.509 device connects with its certificate, sends telemetry and reports", async (t) => {
        if (!emulator) return t.skip(skipReason);
        const registrationId = `x509-${transport}`;
        const device = createTestPki().issueClientCert(registrationId, { selfSigned: true });
        emulator.dps.store.putIndividualEnrollment({
          registrationId,
          attestation: {
            type: "x509",
            x509: { clientCertificates: { primary: { certificate: device.cert } } },
          },
        });
        const session = sessionFor(transport, {
          kind: "x509",
          registrationId,
          cert: device.cert,
          key: device.key,
        });
        session.start();
        await waitForState(session, "connected");
        await session.sendTelemetry({ attested: "x509" }, { messageId: "x509-1" });
        assert.deepEqual(recordedIds(registrationId), ["x509-1"]);
        const record = running().hub.service.recentTelemetry(HUB_HOST, registrationId)[0];
        assert.match(record?.systemProperties["iothub-connection-auth-method"] ?? "", /"type":"x509/i);
        const version = await session.reportProperties({ attestation: "x509" });
        assert.equal(
          running().hub.service.getTwin(HUB_HOST, registrationId)?.properties.reported.$version,
          version,
        );
        await session.close();
      });
    });
  }
});
