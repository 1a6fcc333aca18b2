// Whole flows against the local emulator and a real swtpm: provision, telemetry, twin in, twin report,
// for TPM, group-derived symmetric key and X.509; redeploys leak nothing.
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import {
  helper,
  getNode,
  loadFlow,
  messageMatching,
  startServer,
  stopServer,
  type FlowNode,
} from "../support/node-red.js";
import { dpsConfigNode, flowAround } from "../support/device-flow.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";
import { createTestPki } from "../support/test-certs.js";

interface StateMessage {
  payload: string;
  iothub: { state: string; deviceId?: string; hub?: string; registrationId?: string };
}

function deviceFlow(emulator: Emulator, device: FlowNode): FlowNode[] {
  const twinNodes: FlowNode[] = [
    {
      id: "twin-in",
      type: "provisio-azure-twin-in",
      z: "tab",
      device: device.id,
      output: "patch",
      wires: [["desired"]],
    },
    { id: "desired", type: "helper", z: "tab" },
    {
      id: "twin-report",
      type: "provisio-azure-twin-report",
      z: "tab",
      device: device.id,
      wires: [["reported"]],
    },
    { id: "reported", type: "helper", z: "tab" },
  ];
  return [
    ...flowAround(
      { outboxLimit: 100, outboxOverflow: "drop-oldest", dps: "dps-config", ...device },
      {
        extra: twinNodes,
      },
    ),
    dpsConfigNode(emulator),
  ];
}

async function connected(): Promise<StateMessage> {
  return messageMatching<StateMessage>("states", (m) => m.payload === "connected", 30_000);
}

/** Telemetry, a desired patch from the service API, and a reported patch, for a connected flow. */
async function exerciseDevice(emulator: Emulator, deviceId: string): Promise<void> {
  const hub = emulator.endpoints.hub.hostName;
  const sent = messageMatching<{ payload: unknown; iothub: { state: string } }>("sent", () => true);
  getNode("telemetry").receive({
    payload: { temperature: 21.5 },
    properties: { line: "A" },
    messageId: "m-1",
  });
  const accepted = await sent;
  assert.equal(accepted.iothub.state, "connected");
  const record = emulator.hub.service
    .recentTelemetry(hub, deviceId)
    .find((r) => r.systemProperties.messageId === "m-1");
  assert.ok(record, "the emulator received the telemetry");
  assert.deepEqual(JSON.parse(record.body.toString("utf8")), { temperature: 21.5 });
  assert.equal(record.properties.line, "A");
  assert.equal(record.systemProperties.contentType, "application/json");

  const desired = messageMatching<{ topic: string; payload: Record<string, unknown> }>(
    "desired",
    (m) => m.topic === "desired-patch" && m.payload.interval === 7,
  );
  emulator.hub.service.updateTwin(hub, deviceId, { properties: { desired: { interval: 7 } } });
  await desired;

  const reported = messageMatching<{ version: number }>("reported", () => true);
  getNode("twin-report").receive({ payload: { interval: 7, firmware: "1.2.3" } });
  const { version } = await reported;
  assert.equal(typeof version, "number");
  const twin = emulator.hub.service.getTwin(hub, deviceId);
  assert.equal(twin?.properties.reported.interval, 7);
  assert.equal(twin?.properties.reported.$version, version);
}

describe("flows against the local emulator", () => {
  let dataDir: string;
  let emulator: Emulator;
  let tpm: TestTpm;
  const pki = createTestPki();

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "provisio-flows-"));
    emulator = await startEmulator({ dataDir, deviceCaPems: [pki.caCert] });
    tpm = await startTestTpm();
    await startServer();
  });

  afterEach(async () => {
    await helper.unload();
  });

  after(async () => {
    await stopServer();
    await emulator?.close();
    await tpm?.dispose();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("TPM: provisions, connects, sends telemetry, takes a desired patch and reports", async () => {
    const client = new TpmSecurityClient(tpm.connection);
    const endorsementKey = (await client.getEndorsementKey()).toString("base64");
    const registrationId = await client.getRegistrationId();
    await client.close();
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "tpm", tpm: { endorsementKey } },
    });

    const flow = deviceFlow(emulator, {
      id: "device",
      type: "provisio-azure-device",
      attestation: "tpm",
      tpm: "tpm-config",
    });
    flow.push({ id: "tpm-config", type: "provisio-azure-tpm", ...tpm.connection });
    await loadFlow(flow, { "dps-config": { caPem: emulator.caPem } });
    const state = await connected();
    assert.equal(state.iothub.registrationId, registrationId);
    assert.equal(state.iothub.deviceId, registrationId);
    await exerciseDevice(emulator, registrationId);
  });

  it("symmetric key from an enrollment group (fields from environment variables): the device key is derived", async () => {
    const groupKey = randomBytes(32).toString("base64");
    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: "line-a",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey } },
    });
    const registrationId = "press-17";
    const flow = deviceFlow(emulator, {
      id: "device",
      type: "provisio-azure-device",
      attestation: "groupKey",
      registrationId: "${TEST_REGISTRATION_ID}",
    });
    // fields may name environment variables, as in container deployments
    process.env.TEST_REGISTRATION_ID = registrationId;
    process.env.TEST_ID_SCOPE = emulator.idScope;
    Object.assign(
      flow.find((n) => n.id === "dps-config")!,
      { idScope: "${TEST_ID_SCOPE}" },
    );
    await loadFlow(flow, { "dps-config": { caPem: emulator.caPem }, device: { groupKey } });
    assert.equal((await connected()).iothub.deviceId, registrationId);
    const device = emulator.hub.registry.getDevice(emulator.endpoints.hub.hostName, registrationId);
    const derived = createHmac("sha256", Buffer.from(groupKey, "base64"))
      .update(registrationId)
      .digest("base64");
    assert.equal(
      device?.authentication.type === "sas" && device.authentication.symmetricKey.primaryKey,
      derived,
    );
    await exerciseDevice(emulator, registrationId);
  });

  it("X.509: provisions and connects with a client certificate", async () => {
    const registrationId = "camera-3";
    const issued = pki.issueClientCert(registrationId);
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "x509", x509: { clientCertificates: { primary: { certificate: issued.cert } } } },
    });
    const flow = deviceFlow(emulator, {
      id: "device",
      type: "provisio-azure-device",
      attestation: "x509",
      registrationId,
    });
    await loadFlow(flow, {
      "dps-config": { caPem: emulator.caPem },
      device: { certPem: issued.cert, keyPem: issued.key },
    });
    assert.equal((await connected()).iothub.deviceId, registrationId);
    await exerciseDevice(emulator, registrationId);
  });

  it("a CA that does not verify the emulator's certificate reaches the Catch node once, with msg.iothub", async () => {
    const key = randomBytes(32).toString("base64");
    const flow = deviceFlow(emulator, {
      id: "device",
      type: "provisio-azure-device",
      attestation: "symmetricKey",
      registrationId: "wrong-ca",
    });
    await loadFlow(flow, { "dps-config": { caPem: pki.caCert }, device: { symmetricKey: key } });
    const caught = await messageMatching<{ error: { message: string }; iothub: { state: string } }>(
      "caught",
      () => true,
    );
    assert.match(caught.error.message, /certificate|self.signed|verify/i);
    assert.equal(caught.iothub.state, "retrying");
    assert.equal(caught.error.message.includes(key), false, "no key in the error");
  });

  it("an unreachable TPM reaches the Catch node and Node-RED lives on", async () => {
    const flow = deviceFlow(emulator, {
      id: "device",
      type: "provisio-azure-device",
      attestation: "tpm",
      tpm: "tpm-config",
    });
    flow.push({
      id: "tpm-config",
      type: "provisio-azure-tpm",
      kind: "swtpm",
      host: "127.0.0.1",
      port: 9,
      ctrlPort: 9,
    });
    await loadFlow(flow, { "dps-config": { caPem: emulator.caPem } });
    const caught = await messageMatching<{ error: { message: string } }>("caught", () => true);
    assert.match(caught.error.message, /swtpm|TPM|ECONNREFUSED/);
  });

  it("redeploying 20 times leaves one connection per device and no leaked handles", async () => {
    const registrationId = "redeploy-1";
    const key = randomBytes(32).toString("base64");
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
    });
    const flow = deviceFlow(emulator, {
      id: "device",
      type: "provisio-azure-device",
      attestation: "symmetricKey",
      registrationId,
    });
    const credentials = { "dps-config": { caPem: emulator.caPem }, device: { symmetricKey: key } };
    await loadFlow(flow, credentials);
    await connected();
    const handles = (): number =>
      (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const baseline = handles();
    for (let i = 0; i < 20; i++) {
      await helper.setFlows(flow, "full", credentials);
      await connected();
    }
    assert.equal(emulator.hub.service.connectionCount(), 1, "one hub connection for the device");
    assert.ok(handles() <= baseline + 2, `open handles grew from ${baseline} to ${handles()}`);
  });
});
