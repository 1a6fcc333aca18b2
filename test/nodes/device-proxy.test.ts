// The device config node through an HTTP proxy given as Node-RED core's "http proxy" config node (URL and
// credentials): a device connection string over MQTT over WebSocket through tinyproxy with Basic
// authentication; a wrong proxy password shows in the status, retried, the password never shown.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { SinonSpy } from "sinon";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  allNodes,
  getNode,
  helper,
  messageMatching,
  nextMessage,
  startServer,
  stopServer,
  type FlowNode,
} from "../support/node-red.js";
import { requireFromNodeRed } from "../support/node-red-install.js";
import { startTinyproxy, type TestProxy } from "../support/tinyproxy.js";

const HUB_HOST = "127.0.0.146";
const PROXY_USER = "gateway";
const PROXY_PASSWORD = "proxy-pass-123";

const httpProxyNode = requireFromNodeRed("@node-red/nodes/core/network/06-httpproxy.js") as unknown;

interface StateMessage {
  payload: string;
  iothub: { state: string; error?: string; deviceId?: string };
}

describe("device config node through an http proxy node", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let proxy: TestProxy | undefined;
  let skipReason: string | undefined;
  let devices = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-node-proxy-"));
    try {
      emulator = await startEmulator({ dataDir: dir, hubHost: HUB_HOST, hubHttpsPort: 443 });
      proxy = await startTinyproxy({ auth: { username: PROXY_USER, password: PROXY_PASSWORD } });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((error as Error).name === "TinyproxyNotInstalledError") skipReason = (error as Error).message;
      else if (code === "EACCES" || code === "EADDRNOTAVAIL" || code === "EPERM") {
        skipReason = `cannot listen on ${HUB_HOST}:443 here (${code})`;
      } else throw error;
    }
    await startServer();
  });

  afterEach(async () => {
    await helper.unload();
  });

  after(async () => {
    await stopServer();
    await proxy?.dispose();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function loadProxiedDevice(password: string): Promise<{ deviceId: string; key: string }> {
    devices += 1;
    const deviceId = `node-proxied-${devices}`;
    const key = Buffer.from(`proxied-key-of-${deviceId}-0123456789`).toString("base64");
    emulator!.hub.registry.upsertDevice({
      hubHostName: HUB_HOST,
      deviceId,
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    const flow: FlowNode[] = [
      { id: "tab", type: "tab" },
      { id: "plant-proxy", type: "http proxy", url: proxy!.url, noproxy: ["historian.plant.local"] },
      {
        id: "device",
        type: "provisio-azure-device",
        identity: "connectionString",
        hubTransport: "mqtt-ws",
        proxyMode: "node",
        proxy: "plant-proxy",
        outboxStorage: "memory",
        maxRetryDelay: 1,
      },
      { id: "provision", type: "provisio-azure-provision", z: "tab", device: "device", wires: [["states"]] },
      { id: "states", type: "helper", z: "tab" },
      { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device", wires: [["sent"]] },
      { id: "sent", type: "helper", z: "tab" },
    ];
    await helper.load(
      [...(allNodes as unknown[]), httpProxyNode] as Parameters<typeof helper.load>[0],
      flow,
      {
        "plant-proxy": { username: PROXY_USER, password },
        device: {
          connectionString: `HostName=${HUB_HOST};DeviceId=${deviceId};SharedAccessKey=${key}`,
          hubCaPem: emulator!.caPem,
        },
      },
    );
    return { deviceId, key };
  }

  it("connects through the proxy node's URL and credentials and sends telemetry", async (t) => {
    if (!emulator || !proxy) return t.skip(skipReason);
    const before = await proxy.log();
    const { deviceId } = await loadProxiedDevice(PROXY_PASSWORD);
    await messageMatching<StateMessage>("states", (m) => m.payload === "connected", 30_000);
    const sent = nextMessage("sent", 20_000);
    getNode("telemetry").receive({ payload: { via: "proxy" }, messageId: "node-proxied" });
    await sent;
    const [record] = emulator.hub.service.recentTelemetry(HUB_HOST, deviceId);
    assert.equal(record?.systemProperties.messageId, "node-proxied");
    assert.match((await proxy.log()).slice(before.length), /CONNECT 127\.0\.0\.146:443/);
  });

  it("a wrong proxy password: the status says the proxy refused, retried; the password is never shown", async (t) => {
    if (!emulator || !proxy) return t.skip(skipReason);
    await loadProxiedDevice("wrong-password");
    const first = await messageMatching<StateMessage>("states", (m) => m.iothub.state === "retrying", 30_000);
    assert.match(first.iothub.error ?? "", /proxy .*refused the tunnel.*user name and password/);
    await messageMatching<StateMessage>("states", (m) => m.iothub.state === "retrying", 30_000);
    const statuses = (Reflect.get(getNode("provision"), "status") as SinonSpy).args;
    const logged = helper.log().args;
    const shown = JSON.stringify([statuses, logged, first]);
    assert.ok(!shown.includes("wrong-password"));
  });
});
