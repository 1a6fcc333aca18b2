// The "end-of-line station" example flows, as shipped in examples/, deployed to a real Node-RED process with
// our package (the built lib/) against the local emulator and a fresh swtpm: "board ready" enrolls the TPM in
// DPS through the service API, then the existing provision node provisions and connects the gateway. The
// debug sidebar's messages (read from the editor's comms socket) are the result, and are saved as an artifact.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { startNodeRed, type NodeRedProcess } from "../support/e2e-node-red.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const repoRoot = join(__dirname, "..", "..");
const artifactsDir = join(repoRoot, "test-artifacts", "e2e");
const STEP_MS = 60_000;

interface DebugMessage {
  id: string;
  name: string;
  topic?: string;
  msg: string;
  format: string;
}

function example(name: string): Array<Record<string, unknown>> {
  return JSON.parse(readFileSync(join(repoRoot, "examples", `${name}.json`), "utf8")) as Array<
    Record<string, unknown>
  >;
}

/** The debug messages Node-RED publishes to the editor, collected from its comms websocket. */
async function debugListener(
  url: string,
): Promise<{ messages: DebugMessage[]; statuses: Array<{ id: string; text?: string }>; close(): void }> {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/comms`);
  const messages: DebugMessage[] = [];
  const statuses: Array<{ id: string; text?: string }> = [];
  socket.on("message", (data: WebSocket.Data) => {
    const text = typeof data === "string" ? data : Buffer.isBuffer(data) ? data.toString("utf8") : "";
    const parsed = JSON.parse(text) as Array<{ topic: string; data: DebugMessage }>;
    for (const entry of Array.isArray(parsed) ? parsed : [parsed]) {
      if (entry.topic === "debug") messages.push(entry.data);
      if (entry.topic.startsWith("status/")) {
        statuses.push({
          id: entry.topic.slice("status/".length),
          text: (entry.data as { text?: string }).text,
        });
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  socket.send(JSON.stringify({ subscribe: "debug" }));
  socket.send(JSON.stringify({ subscribe: "status/#" }));
  return { messages, statuses, close: () => socket.close() };
}

/** Presses an inject node's button; its admin route exists once the deployed flow has started. */
async function inject(url: string, id: string): Promise<void> {
  await until(
    `inject node ${id}`,
    async () => (await fetch(`${url}/inject/${id}`, { method: "POST" })).status === 200,
  );
}

async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = STEP_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await probe();
    if (found !== undefined && found !== false) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("example flows: end-of-line station (real Node-RED, emulator, swtpm)", () => {
  let dir: string;
  let emulator: Emulator;
  let tpm: TestTpm;
  let nodeRed: NodeRedProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-station-example-"));
    emulator = await startEmulator({ dataDir: join(dir, "emulator") });
    tpm = await startTestTpm();
    nodeRed = await startNodeRed({
      packageDir: repoRoot,
      env: {
        AZURE_IOT_DPS_ENDPOINT: emulator.endpoints.dps.amqp,
        AZURE_IOT_ID_SCOPE: emulator.idScope,
        AZURE_IOT_CA_FILE: emulator.caFile,
        AZURE_IOT_DPS_SERVICE_CONNECTION_STRING: emulator.connectionStrings.dpsService,
        SWTPM_HOST: tpm.connection.host,
        SWTPM_PORT: String(tpm.connection.port),
        SWTPM_CTRL_PORT: String(tpm.connection.ctrlPort),
      },
    });
  });

  after(async () => {
    await nodeRed?.stop();
    await emulator?.close();
    await tpm?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it("enrolls the swtpm board in DPS, then provisions and connects it", async () => {
    const flows = example("end-of-line station - enroll then provision");
    const deployed = await fetch(`${nodeRed.url}/flows`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Node-RED-Deployment-Type": "full" },
      body: JSON.stringify(flows),
    });
    assert.equal(deployed.status, 204, await deployed.text());
    const debug = await debugListener(nodeRed.url);
    try {
      await inject(nodeRed.url, "eolp-board-ready");

      const connected = await until("the state debug to show connected", () =>
        debug.messages.find((m) => m.name === "state" && /"state":"connected"/.test(m.msg)),
      );
      const enrolled = debug.messages.find((m) => m.name === "enrolled");
      assert.ok(enrolled, "the enrollment answer reached the debug sidebar");
      const answer = JSON.parse(enrolled.msg) as {
        payload: { registrationId: string; etag: string; initialTwin: { tags: Record<string, unknown> } };
        dps: { action: string };
        tpm: { manufacturer: string };
      };
      assert.equal(answer.dps.action, "created");
      assert.equal(answer.tpm.manufacturer, "IBM");
      assert.equal(answer.payload.initialTwin.tags.customer, "ACME Tooling");
      // status texts come from the nodes' message catalogues (not the key fallback)
      const enrollStatuses = debug.statuses.filter((s) => s.id === "eolp-enroll").map((s) => s.text);
      assert.ok(enrollStatuses.includes("enrolling\u2026"), JSON.stringify(enrollStatuses));
      assert.ok(enrollStatuses.includes(`created ${answer.payload.registrationId}`));
      const state = JSON.parse(connected.msg) as { deviceId: string; hub: string };
      assert.equal(state.deviceId, answer.payload.registrationId);

      const twin = emulator.hub.service.getTwin(emulator.endpoints.hub.hostName, state.deviceId);
      assert.equal(twin?.tags?.order, "SO-4711");
      assert.equal(twin?.properties.desired.site, "Plant 2");
      assert.equal(
        debug.messages.filter((m) => m.name === "station errors").length,
        0,
        JSON.stringify(debug.messages),
      );

      // the output of the example, for the record (no secrets: a TPM enrollment has none)
      await mkdir(artifactsDir, { recursive: true });
      const lines = debug.messages.map((m) => `[${m.name}] ${m.msg}`);
      await writeFile(join(artifactsDir, "station-example-debug.txt"), `${lines.join("\n")}\n`);
      const secret = /SharedAccessKey=([^;]+)/.exec(emulator.connectionStrings.dpsService)?.[1] ?? "";
      assert.equal(lines.join("\n").includes(secret), false);
      assert.equal(nodeRed.log().includes(secret), false, "no key in the Node-RED log");
    } finally {
      debug.close();
    }
  });

  it("the enroll example enrolls a pallet in bulk, and refuses to enroll the same board twice", async () => {
    const deployed = await fetch(`${nodeRed.url}/flows`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Node-RED-Deployment-Type": "full" },
      body: JSON.stringify(example("end-of-line station - enroll")),
    });
    assert.equal(deployed.status, 204, await deployed.text());
    const debug = await debugListener(nodeRed.url);
    try {
      await inject(nodeRed.url, "eol-pallet");
      const pallet = await until("the pallet's bulk report", () =>
        debug.messages.find((m) => m.name === "enrolled" && /"succeeded"/.test(m.msg)),
      );
      const report = (JSON.parse(pallet.msg) as { payload: { succeeded: string[]; failed: unknown[] } })
        .payload;
      assert.deepEqual(report.succeeded, ["pallet-gw-1", "pallet-gw-2", "pallet-gw-3"]);
      assert.deepEqual(report.failed, []);

      // the board of the first test is enrolled already: the station says so and keeps the enrollment
      await inject(nodeRed.url, "eol-board-ready");
      const refused = await until("the station error", () =>
        debug.messages.find((m) => m.name === "station errors"),
      );
      assert.match(refused.msg, /exists already/);
      await writeFile(
        join(artifactsDir, "station-example-enroll-debug.txt"),
        `${debug.messages.map((m) => `[${m.name}] ${m.msg}`).join("\n")}\n`,
      );
    } finally {
      debug.close();
    }
  });
});
