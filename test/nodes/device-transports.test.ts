// The device config node's hub transport and its identities without DPS, in flows against the emulator in
// Azure's layout (the hub on a loopback address of its own: 5671, 8883 and 443). A device connection string
// is a credential: it never shows in a status, a log line or an error a Catch node sees.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { SinonSpy } from "sinon";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  getNode,
  helper,
  loadFlow,
  messageMatching,
  nextMessage,
  startServer,
  stopServer,
  type FlowNode,
} from "../support/node-red.js";
import { dpsConfigNode, flowAround } from "../support/device-flow.js";
import { establishedPortsTo } from "../support/tcp-connections.js";
import { createTestPki } from "../support/test-certs.js";

/** This file's own address: the hub's ports are fixed. */
const HUB_HOST = "127.0.0.142";

interface StateMessage {
  payload: string;
  iothub: { state: string; deviceId?: string; hub?: string; error?: string };
}

function flowWith(device: Record<string, unknown>, extra: FlowNode[] = []): FlowNode[] {
  const node: FlowNode = {
    id: "device",
    type: "provisio-azure-device",
    outboxLimit: 100,
    outboxOverflow: "drop-oldest",
    outboxStorage: "memory",
    maxRetryDelay: 1,
    ...device,
  };
  return flowAround(node, { extra });
}

const state = (name: string) => messageMatching<StateMessage>("states", (m) => m.payload === name, 30_000);

/** Every text the flow showed: status texts of the flow nodes and every line Node-RED logged. */
function everythingShown(): string {
  const statuses = ["provision", "telemetry"].flatMap((id) =>
    (Reflect.get(getNode(id), "status") as SinonSpy).args.map((args) => JSON.stringify(args)),
  );
  const logged = helper.log().args.map((args) => JSON.stringify(args));
  return [...statuses, ...logged].join("\n");
}

async function sendTelemetry(messageId: string): Promise<void> {
  const sent = nextMessage<{ iothub: { state: string } }>("sent", 20_000);
  getNode("telemetry").receive({ payload: { messageId }, messageId });
  assert.equal((await sent).iothub.state, "connected");
}

describe("device config node: hub transport and identity without DPS", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let skipReason: string | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-node-transports-"));
    try {
      emulator = await startEmulator({ dataDir: dir, hubHost: HUB_HOST, hubHttpsPort: 443 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EADDRNOTAVAIL" && code !== "EPERM") throw error;
      skipReason = `cannot listen on ${HUB_HOST}:443/5671/8883 here (${code})`;
    }
    await startServer();
  });

  afterEach(async () => {
    await helper.unload();
  });

  after(async () => {
    await stopServer();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function recordedIds(deviceId: string): string[] {
    return (emulator?.hub.service.recentTelemetry(HUB_HOST, deviceId) ?? []).map(
      (record) => record.systemProperties.messageId ?? "",
    );
  }

  it("DPS identity over MQTT over WebSocket: connects on 443, sends telemetry", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const registrationId = "node-mqtt-ws";
    const key = Buffer.from(`key-of-${registrationId}-0123456789abcdef`).toString("base64");
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
    });
    await loadFlow(
      flowWith({ dps: "dps-config", attestation: "symmetricKey", registrationId, hubTransport: "mqtt-ws" }, [
        dpsConfigNode(emulator),
      ]),
      { "dps-config": { caPem: emulator.caPem }, device: { symmetricKey: key } },
    );
    assert.equal((await state("connected")).iothub.hub, HUB_HOST);
    assert.deepEqual(establishedPortsTo(HUB_HOST), [443]);
    await sendTelemetry("over-mqtt-ws");
    assert.deepEqual(recordedIds(registrationId), ["over-mqtt-ws"]);
  });

  it("a device connection string over AMQP over WebSocket: retried while the hub refuses, then connected; never shown", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const deviceId = "node-cs";
    const key = Buffer.from(`direct-key-of-${deviceId}-0123456789`).toString("base64");
    const connectionString = `HostName=${HUB_HOST};DeviceId=${deviceId};SharedAccessKey=${key}`;
    const register = (status: "enabled" | "disabled"): void =>
      emulator?.hub.registry.upsertDevice({
        hubHostName: HUB_HOST,
        deviceId,
        status,
        authentication: { type: "sas", symmetricKey: { primaryKey: key } },
      });
    register("disabled");
    await loadFlow(flowWith({ identity: "connectionString", hubTransport: "amqp-ws" }), {
      device: { connectionString, hubCaPem: emulator.caPem },
    });
    const refused = await messageMatching<StateMessage>(
      "states",
      (m) => m.iothub.state === "retrying",
      30_000,
    );
    assert.ok(refused.iothub.error, "the retry says why");
    const connected = state("connected");
    register("enabled");
    const up = await connected;
    assert.equal(up.iothub.deviceId, deviceId);
    assert.equal(up.iothub.hub, HUB_HOST);
    await sendTelemetry("direct-1");
    assert.deepEqual(recordedIds(deviceId), ["direct-1"]);
    const shown = everythingShown();
    assert.ok(!shown.includes(key), "the key is never shown");
    assert.ok(!shown.includes("SharedAccessKey="), "nor the connection string");
  });

  it("a connection string that cannot be used: red status and a Catch error that names the problem, not the string", async () => {
    const key = Buffer.from("a-key-that-must-not-show-0123456789").toString("base64");
    const connectionString = `HostName=${HUB_HOST};DeviceId=node-module;ModuleId=m1;SharedAccessKey=${key}`;
    await loadFlow(flowWith({ identity: "connectionString" }), { device: { connectionString } });
    const statuses = Reflect.get(getNode("telemetry"), "status") as SinonSpy;
    assert.ok(statuses.calledWithMatch({ fill: "red" }));
    const caught = nextMessage<{ error: { message: string } }>("caught");
    getNode("telemetry").receive({ payload: { temperature: 21 } });
    const { error } = await caught;
    assert.match(error.message, /connection string cannot be used: .*ModuleId/);
    assert.ok(!error.message.includes(key));
    const shown = everythingShown();
    assert.ok(!shown.includes(key) && !shown.includes("SharedAccessKey="));
  });

  it("hub host name + device id + X.509 certificate over MQTT", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const deviceId = "node-x509-direct";
    const device = createTestPki().issueClientCert(deviceId, { selfSigned: true });
    emulator.hub.registry.upsertDevice({
      hubHostName: HUB_HOST,
      deviceId,
      status: "enabled",
      authentication: { type: "selfSigned", x509Thumbprint: { primaryThumbprint: device.thumbprint } },
    });
    await loadFlow(flowWith({ identity: "x509Hub", hubHostName: HUB_HOST, deviceId, hubTransport: "mqtt" }), {
      device: { certPem: device.cert, keyPem: device.key, hubCaPem: emulator.caPem },
    });
    assert.equal((await state("connected")).iothub.deviceId, deviceId);
    assert.deepEqual(establishedPortsTo(HUB_HOST), [8883]);
    await sendTelemetry("x509-direct-1");
    assert.deepEqual(recordedIds(deviceId), ["x509-direct-1"]);
  });
});
