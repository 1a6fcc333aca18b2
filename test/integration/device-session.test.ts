// DeviceSession against the local emulator (real TLS, AMQP and the unmodified Azure SDK on 127.0.0.1):
// a symmetric-key device provisions, connects, sends telemetry, reports properties, follows the twin
// across a dropped connection, and replays telemetry queued while it was offline.
import { createPrivateKey } from "node:crypto";
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { createTestPki } from "../support/test-certs.js";
import {
  DeviceSession,
  MemoryRegistrationStore,
  deriveDeviceKey,
  type BackoffPolicy,
  type DeviceSessionConfig,
  type DpsConfig,
  type SessionState,
  type SessionStateEvent,
} from "../../src/device/index.js";
import { lastOccurrences } from "../support/delivery-order.js";

const WAIT_MS = 20_000;
/** Short fixed delays: the tests exercise the loop, not the delay curve. */
const fastBackoff: BackoffPolicy = { delayMs: () => 200 };

function waitFor<T>(
  emitter: DeviceSession,
  event: "state" | "twin" | "desired",
  match: (value: T) => boolean,
  what: string,
) {
  return new Promise<T>((resolve, reject) => {
    const onEvent = (value: T) => {
      if (!match(value)) return;
      clearTimeout(timer);
      emitter.off(event, onEvent as never);
      resolve(value);
    };
    const timer = setTimeout(() => {
      emitter.off(event, onEvent as never);
      reject(new Error(`timed out waiting for ${what}`));
    }, WAIT_MS);
    emitter.on(event, onEvent as never);
  });
}

function waitForState(session: DeviceSession, state: SessionState): Promise<SessionStateEvent> {
  if (session.state === state) return Promise.resolve(session.status);
  return waitFor<SessionStateEvent>(session, "state", (event) => event.state === state, `state ${state}`);
}

describe("device session against the emulator", () => {
  let dir: string;
  let emulator: Emulator;
  const sessions: DeviceSession[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-device-session-"));
    emulator = await startEmulator({ dataDir: join(dir, "emulator") });
  });

  const tpms: TestTpm[] = [];

  after(async () => {
    for (const session of sessions) await session.close();
    for (const tpm of tpms) await tpm.dispose();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function enrolIndividual(registrationId: string): string {
    const key = Buffer.from(`key-of-${registrationId}-0123456789abcdef`).toString("base64");
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
    });
    return key;
  }

  /** The emulator's DPS over `transport`, trusting its CA. */
  function emulatorDps(transport: "amqp" | "https" | "mqtt"): DpsConfig {
    return {
      globalEndpoint: emulator.endpoints.dps[transport],
      idScope: emulator.idScope,
      transport,
      ca: emulator.caPem,
    };
  }

  function sessionFor(
    attestation: DeviceSessionConfig["attestation"],
    extra: Partial<DeviceSessionConfig> = {},
  ) {
    const session = new DeviceSession({
      dps: emulatorDps("amqp"),
      attestation,
      ...extra,
      options: {
        backoff: fastBackoff,
        twinTimeoutMs: 10_000,
        telemetryAckTimeoutMs: 10_000,
        ...extra.options,
      },
    });
    sessions.push(session);
    return session;
  }

  /** An individually enrolled symmetric-key device's session, started and connected (over AMQP). */
  async function connectedSymmetricKeySession(
    registrationId: string,
    options: DeviceSessionConfig["options"] = {},
  ): Promise<DeviceSession> {
    const key = enrolIndividual(registrationId);
    const session = sessionFor({ kind: "symmetricKey", registrationId, key }, { options });
    session.start();
    await waitForState(session, "connected");
    return session;
  }

  it("provisions, connects, sends telemetry the hub records and reports properties with their version", async () => {
    const registrationId = "session-sym-1";
    const key = enrolIndividual(registrationId);
    const session = sessionFor({ kind: "symmetricKey", registrationId, key });
    const states: SessionState[] = [];
    session.on("state", (event) => states.push(event.state));
    const twin = waitFor<Record<string, unknown>>(session, "twin", () => true, "twin");
    session.start();
    const connected = await waitForState(session, "connected");
    assert.deepEqual(states, ["provisioning", "provisioned", "connecting", "connected"]);
    assert.equal(connected.registrationId, registrationId);
    assert.equal(connected.deviceId, registrationId);
    assert.equal(connected.hub, emulator.endpoints.hub.hostName);
    assert.equal(typeof (await twin).$version, "number");

    await session.sendTelemetry(
      { temperature: 21.5 },
      { properties: { unit: "C" }, messageId: "m-1", correlationId: "c-1", component: "thermostat1" },
    );
    const records = emulator.hub.service.recentTelemetry(emulator.endpoints.hub.hostName, registrationId);
    const record = records.find((r) => r.systemProperties.messageId === "m-1");
    assert.ok(record, "the hub recorded the message");
    assert.deepEqual(JSON.parse(record.body.toString("utf8")), { temperature: 21.5 });
    assert.equal(record.properties.unit, "C");
    assert.equal(record.systemProperties.contentType, "application/json");
    assert.equal(record.systemProperties.contentEncoding, "utf-8");
    assert.equal(record.systemProperties.correlationId, "c-1");
    assert.equal(record.systemProperties.component, "thermostat1");

    const first = await session.reportProperties({ firmware: "1.0.0" });
    const second = await session.reportProperties({ firmware: "1.0.1", uptime: 5 });
    assert.equal(second, first + 1);
    const hubTwin = emulator.hub.service.getTwin(emulator.endpoints.hub.hostName, registrationId);
    assert.equal(hubTwin?.properties.reported.firmware, "1.0.1");
    assert.equal(hubTwin?.properties.reported.$version, second);

    const fetched = await session.getTwin();
    assert.equal(fetched.reported.firmware, "1.0.1");
  });

  it("after the hub drops the connection it reconnects without registering again and emits desired changes made offline", async () => {
    const registrationId = "session-sym-2";
    const session = await connectedSymmetricKeySession(registrationId);
    const hub = emulator.endpoints.hub.hostName;

    const states: SessionState[] = [];
    session.on("state", (event) => states.push(event.state));
    // Change the desired properties while the device is offline: right when the drop is noticed.
    const disconnected = waitFor<SessionStateEvent>(
      session,
      "state",
      (e) => e.state === "disconnected",
      "disconnected",
    );
    session.once("state", (event) => {
      if (event.state === "disconnected")
        emulator.hub.service.updateTwin(hub, registrationId, { properties: { desired: { interval: 42 } } });
    });
    const twinAfterReconnect = waitFor<Record<string, unknown>>(
      session,
      "twin",
      (d) => d.interval === 42,
      "twin with interval 42",
    );
    // A twin link detached with an error makes the SDK run the whole connection down (docs/hub-amqp-protocol.md
    // §6.2). (faults.dropConnection would test a TCP drop, but the emulator keeps a heartbeat timer of the
    // dropped connection alive, so this file would not exit; reported to the emulator's authors.)
    assert.equal(emulator.hub.faults.detachLink(hub, registrationId, "twin"), true);
    await disconnected;
    // Telemetry while offline waits in the outbox and goes out after the reconnect, in order.
    const sends = [1, 2, 3].map((n) => session.sendTelemetry(`offline-${n}`, { messageId: `offline-${n}` }));
    await twinAfterReconnect;
    await Promise.all(sends);
    assert.ok(!states.includes("provisioning"), `no new registration: ${states.join(" -> ")}`);
    assert.deepEqual(states.slice(0, 4), ["disconnected", "retrying", "connecting", "connected"]);
    const ids = emulator.hub.service
      .recentTelemetry(hub, registrationId)
      .map((r) => r.systemProperties.messageId)
      .filter((id) => id?.startsWith("offline-"));
    assert.deepEqual(ids, ["offline-1", "offline-2", "offline-3"]);

    // A desired patch made while connected arrives once (no duplicate handlers after the reconnect).
    const patches: Array<Record<string, unknown>> = [];
    session.on("desired", (patch) => patches.push(patch));
    const patched = waitFor<Record<string, unknown>>(
      session,
      "desired",
      (p) => p.mode === "eco",
      "desired patch",
    );
    emulator.hub.service.updateTwin(hub, registrationId, { properties: { desired: { mode: "eco" } } });
    await patched;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(patches.filter((p) => p.mode === "eco").length, 1);
  });

  it("a group-enrollment member derives its key, and a cached registration skips DPS on the next start", async () => {
    const groupKey = Buffer.alloc(32, 7).toString("base64");
    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: "session-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey } },
    });
    const registrationId = "session-group-member-1";
    assert.notEqual(deriveDeviceKey(groupKey, registrationId), groupKey);
    const registrationStore = new MemoryRegistrationStore();
    const first = sessionFor(
      { kind: "symmetricKey", registrationId, groupKey },
      { options: { registrationStore } },
    );
    first.start();
    await waitForState(first, "connected");
    await first.close();
    assert.equal(first.state, "closed");

    const second = sessionFor(
      { kind: "symmetricKey", registrationId, groupKey },
      { options: { registrationStore } },
    );
    const states: SessionState[] = [];
    second.on("state", (event) => states.push(event.state));
    second.start();
    await waitForState(second, "connected");
    assert.deepEqual(states, ["provisioning", "provisioned", "connecting", "connected"]);
  });

  it("a device DPS does not know (401 over HTTPS) keeps retrying, says why without the key, and connects once enrolled", async () => {
    const key = Buffer.from("an-unenrolled-device-key-0123456789").toString("base64");
    const session = sessionFor(
      { kind: "symmetricKey", registrationId: "session-unknown", key },
      { dps: emulatorDps("https") },
    );
    session.start();
    const failed = await waitForState(session, "retrying");
    assert.match(failed.error ?? "", /Unauthorized|401/, "the retrying state says why");
    assert.ok(!(failed.error ?? "").includes(key), "the key is not in the reason");
    await waitForState(session, "retrying");
    emulator.dps.store.putIndividualEnrollment({
      registrationId: "session-unknown",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
    });
    await waitForState(session, "connected");
    await session.stop();
    assert.equal(session.state, "idle");
  });
  for (const transport of ["https", "mqtt"] as const) {
    it(`provisions over ${transport} and then connects to the hub over AMQP`, async () => {
      const registrationId = `session-${transport}-1`;
      const key = enrolIndividual(registrationId);
      const session = sessionFor(
        { kind: "symmetricKey", registrationId, key },
        { dps: emulatorDps(transport) },
      );
      session.start();
      const connected = await waitForState(session, "connected");
      assert.equal(connected.deviceId, registrationId);
      await session.sendTelemetry({ via: transport });
      assert.equal(
        emulator.hub.service.recentTelemetry(emulator.endpoints.hub.hostName, registrationId).length,
        1,
      );
    });
  }

  it("registers again when the hub no longer knows the cached device, then carries on", async () => {
    const registrationId = "session-sym-deleted";
    const session = await connectedSymmetricKeySession(registrationId);
    const hub = emulator.endpoints.hub.hostName;
    const states: SessionState[] = [];
    session.on("state", (event) => states.push(event.state));
    assert.equal(emulator.hub.registry.deleteDevice(hub, registrationId), true);
    emulator.hub.faults.detachLink(hub, registrationId, "twin");
    await waitForState(session, "provisioning");
    await waitForState(session, "connected");
    assert.ok(states.includes("provisioning"), states.join(" -> "));
    assert.ok(emulator.hub.registry.getDevice(hub, registrationId), "DPS registered the device again");
    await session.sendTelemetry("after re-registration");
  });

  it("a TPM device (swtpm) provisions with its endorsement key, connects with TPM-signed tokens and reports", async () => {
    const tpm = await startTestTpm();
    tpms.push(tpm);
    const reader = new TpmSecurityClient(tpm.connection);
    const endorsementKey = await reader.getEndorsementKey();
    const registrationId = await reader.getRegistrationId();
    await reader.close();
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      deviceId: "tpm-gateway-1",
      attestation: { type: "tpm", tpm: { endorsementKey: endorsementKey.toString("base64") } },
    });
    const session = sessionFor({ kind: "tpm", connection: tpm.connection });
    session.start();
    const connected = await waitForState(session, "connected");
    assert.equal(connected.registrationId, registrationId);
    assert.equal(connected.deviceId, "tpm-gateway-1");
    await session.sendTelemetry({ attested: "tpm" });
    const version = await session.reportProperties({ attestation: "tpm" });
    assert.equal(
      emulator.hub.service.getTwin(emulator.endpoints.hub.hostName, "tpm-gateway-1")?.properties.reported
        .$version,
      version,
    );
    await session.close();
    assert.equal(session.state, "closed");
  });
  for (const transport of ["amqp", "https", "mqtt"] as const) {
    it(`an X.509 device (self-signed certificate) provisions over ${transport} and connects with its certificate`, async () => {
      const registrationId = `session-x509-${transport}`;
      const device = createTestPki().issueClientCert(registrationId, { selfSigned: true });
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        attestation: {
          type: "x509",
          x509: { clientCertificates: { primary: { certificate: device.cert } } },
        },
      });
      const session = sessionFor(
        { kind: "x509", registrationId, cert: device.cert, key: device.key },
        { dps: emulatorDps(transport) },
      );
      session.start();
      const connected = await waitForState(session, "connected");
      assert.equal(connected.deviceId, registrationId);
      await session.sendTelemetry({ attested: "x509" });
      assert.equal(typeof (await session.reportProperties({ attestation: "x509" })), "number");
    });
  }
  for (const transport of ["amqp", "https", "mqtt"] as const) {
    it(`an X.509 device with an encrypted private key uses its passphrase for DPS over ${transport} and the hub`, async () => {
      const registrationId = `session-x509-encrypted-${transport}`;
      const device = createTestPki().issueClientCert(registrationId, { selfSigned: true });
      const passphrase = "correct horse battery staple";
      const encryptedKey = createPrivateKey(device.key)
        .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase })
        .toString();
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        attestation: {
          type: "x509",
          x509: { clientCertificates: { primary: { certificate: device.cert } } },
        },
      });
      const session = sessionFor(
        { kind: "x509", registrationId, cert: device.cert, key: encryptedKey, passphrase },
        { dps: emulatorDps(transport) },
      );
      session.start();
      await waitForState(session, "connected");
      await session.sendTelemetry({ attested: "x509, encrypted key" });
      await session.close();
      assert.throws(
        () =>
          sessionFor(
            { kind: "x509", registrationId, cert: device.cert, key: encryptedKey, passphrase: "wrong" },
            { dps: emulatorDps(transport) },
          ),
        (error: Error) =>
          error.name === "ConfigurationError" &&
          /wrong passphrase/.test(error.message) &&
          !error.message.includes('wrong"') &&
          !error.message.includes("PRIVATE KEY"),
      );
    });
  }

  it("a telemetry link the hub detaches is noticed at once, not at the 30 s acknowledgement timeout", async () => {
    const registrationId = "session-sym-detach-telemetry";
    const session = await connectedSymmetricKeySession(registrationId, { telemetryAckTimeoutMs: 30_000 });
    await session.sendTelemetry("before", { messageId: "before" });
    const started = Date.now();
    const lost = waitForState(session, "disconnected");
    assert.ok(emulator.hub.faults.detachLink(emulator.endpoints.hub.hostName, registrationId, "telemetry"));
    await lost;
    assert.ok(Date.now() - started < 3_000, `noticed after ${Date.now() - started} ms`);
    await session.sendTelemetry("after", { messageId: "after" });
    const ids = emulator.hub.service
      .recentTelemetry(emulator.endpoints.hub.hostName, registrationId)
      .map((r) => r.systemProperties.messageId);
    assert.deepEqual(ids, ["before", "after"]);
  });

  it("an outbox on disk larger than its in-memory window survives a new session and reaches the hub in order", async () => {
    const registrationId = "session-sym-disk-outbox";
    const key = enrolIndividual(registrationId);
    const outboxFile = join(dir, "outbox", `${registrationId}.log`);
    const count = 3_000;
    const received: string[] = [];
    emulator.hub.service.on(
      "telemetry",
      (record: { deviceId: string; systemProperties: { messageId?: unknown } }) => {
        if (record.deviceId === registrationId) received.push(String(record.systemProperties.messageId));
      },
    );
    // Not started: everything waits; past the read-ahead (1,024) the messages are only on disk.
    const first = sessionFor({ kind: "symmetricKey", registrationId, key }, { options: { outboxFile } });
    const ids = Array.from({ length: count }, (_, i) => `disk-${i}`);
    const sends = ids.map((id, i) =>
      first.sendTelemetry({ i }, { messageId: id }).catch((error: Error) => error.name),
    );
    assert.equal(first.outboxSize, count);
    assert.ok(first.outboxInMemory <= 1_024, `${first.outboxInMemory} in memory`);
    await first.close();
    const outcomes = await Promise.all(sends);
    assert.equal(outcomes.filter((o) => o === "stored").length, count - 1_024);
    assert.ok(outcomes.slice(0, 1_024).every((o) => o === "TelemetryKeptError"));

    const second = sessionFor({ kind: "symmetricKey", registrationId, key }, { options: { outboxFile } });
    assert.equal(second.outboxSize, count);
    assert.equal(second.outboxInMemory, 0, "nothing loaded at open");
    second.start();
    const deadline = Date.now() + 60_000;
    while (second.outboxSize > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(second.outboxSize, 0);
    assert.deepEqual(lastOccurrences(received), ids);
    assert.equal(second.droppedCount, 0);
  });

  for (const fault of ["throttled", "quota-exceeded"] as const) {
    it(`telemetry the hub refuses as ${fault} waits and is sent again in order; the session stays connected`, async () => {
      const registrationId = `session-sym-${fault}`;
      const session = await connectedSymmetricKeySession(registrationId);
      const states: SessionState[] = [];
      const pauses: string[] = [];
      session.on("state", (event) => states.push(event.state));
      session.on("paused", (pause) => pauses.push(pause.reason));
      if (fault === "throttled") emulator.hub.faults.throttleNext(3);
      else emulator.hub.faults.exceedQuotaNext(3);
      const ids = ["r-1", "r-2", "r-3", "r-4"];
      await Promise.all(ids.map((id) => session.sendTelemetry(id, { messageId: id })));
      const received = emulator.hub.service
        .recentTelemetry(emulator.endpoints.hub.hostName, registrationId)
        .map((r) => String(r.systemProperties.messageId));
      // All four went out at once: r-4 was accepted while r-1..r-3 were refused, so it went again after them.
      assert.deepEqual(lastOccurrences(received), ids);
      assert.ok(received.length - ids.length <= session.resentCount, "copies only of messages sent again");
      assert.ok(pauses.length >= 1 && pauses.every((reason) => reason === fault), pauses.join(","));
      assert.deepEqual(states, [], "no reconnect for a throttled message");
    });
  }

  it("telemetry waits through a hub ack delay shorter than the ack timeout", async () => {
    const registrationId = "session-sym-slow-acks";
    const session = await connectedSymmetricKeySession(registrationId);
    emulator.hub.faults.delayAcks(300);
    try {
      await session.sendTelemetry("slow", { messageId: "slow-1" });
    } finally {
      emulator.hub.faults.delayAcks(0);
    }
    assert.equal(session.state, "connected");
  });
});
