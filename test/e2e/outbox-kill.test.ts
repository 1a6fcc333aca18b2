// Store-and-forward through a real Node-RED process: a burst of telemetry waits in the device's outbox on disk
// (the hub unreachable, or holding back its acknowledgements so that 64 are in flight); Node-RED is killed
// with SIGKILL; after a restart on the same user folder every message reaches the hub, in order, and only the
// messages in flight at the kill arrive twice, with the same messageId.
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { FaultWorld, account, sleep } from "../support/fault-harness.js";
import { removeQuietly, startNodeRed, type NodeRedProcess } from "../support/e2e-node-red.js";

const repoRoot = join(__dirname, "..", "..");
const COUNT = 500;

function flows(world: FaultWorld, registrationId: string): unknown[] {
  return [
    { id: "tab", type: "tab", label: "outbox" },
    {
      id: "dps-config",
      type: "provisio-azure-dps",
      globalEndpoint: world.emulator.endpoints.dps.amqp,
      idScope: world.emulator.idScope,
      transport: "amqp",
      caSource: "text",
    },
    {
      id: "device",
      type: "provisio-azure-device",
      dps: "dps-config",
      attestation: "symmetricKey",
      registrationId,
      outboxLimit: 10_000,
      outboxOverflow: "reject-new",
      outboxStorage: "disk",
      maxRetryDelay: 2,
    },
    {
      id: "provision",
      type: "provisio-azure-provision",
      z: "tab",
      device: "device",
      connectOnDeploy: true,
      wires: [[]],
    },
    {
      id: "burst-in",
      type: "http in",
      z: "tab",
      url: "/burst",
      method: "post",
      wires: [["burst", "burst-done"]],
    },
    { id: "burst-done", type: "http response", z: "tab", statusCode: "200", wires: [] },
    {
      id: "burst",
      type: "function",
      z: "tab",
      func:
        "for (let i = msg.payload.from; i < msg.payload.from + msg.payload.count; i++) " +
        "node.send({ payload: { i }, messageId: 'kill-' + String(i).padStart(5, '0') });\nreturn null;",
      outputs: 1,
      wires: [["telemetry"]],
    },
    { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device", wires: [[]] },
  ];
}

/** Messages kept in the outbox log whose segments are `<file>.00000001`, …  (docs/architecture.md §3.1). */
function linesIn(file: string): number {
  const dir = dirname(file);
  if (!existsSync(dir)) return 0;
  return readdirSync(dir)
    .filter((name) => name.startsWith(`${basename(file)}.`))
    .reduce(
      (sum, name) =>
        sum +
        readFileSync(join(dir, name), "utf8")
          .split("\n")
          .filter((line) => line.startsWith("k ")).length,
      0,
    );
}

describe("outbox on disk through a Node-RED process killed with SIGKILL", () => {
  let world: FaultWorld;
  let userDir: string | undefined;
  let nodeRed: NodeRedProcess | undefined;

  before(async () => {
    world = await FaultWorld.start();
    userDir = await mkdtemp(join(tmpdir(), "provisio-outbox-kill-"));
  });

  after(async () => {
    await nodeRed?.kill();
    await world?.close();
    await removeQuietly(userDir);
  });

  it("killed with messages in flight: all arrive after the restart, twice only those in flight (same id)", async (t) => {
    const registrationId = "outbox-kill-2";
    const key = world.enroll(registrationId);
    const dir = await mkdtemp(join(tmpdir(), "provisio-outbox-kill-"));
    try {
      await writeFile(join(dir, "flows.json"), JSON.stringify(flows(world, registrationId)));
      await writeFile(
        join(dir, "flows_cred.json"),
        JSON.stringify({ "dps-config": { caPem: world.emulator.caPem }, device: { symmetricKey: key } }),
      );
      await world.proxy.accept().catch(() => undefined);
      nodeRed = await startNodeRed({ packageDir: repoRoot, userDir: dir });
      const deadline = Date.now() + 30_000;
      while (
        !world.emulator.hub.service.isConnected(world.hubHostName, registrationId) &&
        Date.now() < deadline
      ) {
        await sleep(100);
      }
      // The hub takes messages but holds back its acknowledgements: up to 64 are in flight (and recorded at
      // the hub), the rest wait on disk.
      world.emulator.hub.faults.delayAcks(120_000);
      await fetch(`${nodeRed.url}/burst`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ from: 1, count: COUNT }),
      });
      const log = join(dir, "azure-iot-outbox", "device.log");
      const until = Date.now() + 20_000;
      while (linesIn(log) < COUNT && Date.now() < until) await sleep(50);
      const kept = linesIn(log);
      // The first window reaches the hub (recorded, not acknowledged): now they are in flight.
      while (world.receivedBy(registrationId).length === 0 && Date.now() < until) await sleep(50);
      await sleep(300);
      await nodeRed.kill();
      nodeRed = undefined;
      world.emulator.hub.faults.delayAcks(0);
      const beforeRestart = world.receivedBy(registrationId).length;
      nodeRed = await startNodeRed({ packageDir: repoRoot, userDir: dir });
      const sent = Array.from({ length: COUNT }, (_, i) => `kill-${String(i + 1).padStart(5, "0")}`);
      const end = Date.now() + 60_000;
      while (account(sent, world.receivedBy(registrationId)).missing.length > 0 && Date.now() < end) {
        await sleep(100);
      }
      await sleep(500);
      const delivery = account(sent, world.receivedBy(registrationId));
      assert.equal(kept, COUNT);
      assert.deepEqual(delivery.missing, [], nodeRed.log().slice(-2000));
      assert.deepEqual(delivery.outOfOrder, []);
      assert.ok(beforeRestart > 0 && beforeRestart <= 64, `${beforeRestart} in flight at the kill`);
      assert.equal(
        delivery.duplicates,
        beforeRestart,
        "exactly the messages in flight at the kill, sent again",
      );
      t.diagnostic(
        `in the disk outbox at the kill: ${kept}; in flight (at the hub, unacknowledged): ${beforeRestart}; ` +
          `received after the restart: ${delivery.received - beforeRestart}; duplicates: ${delivery.duplicates}`,
      );
    } finally {
      await nodeRed?.kill();
      nodeRed = undefined;
      world.emulator.hub.faults.delayAcks(0);
      await removeQuietly(dir);
    }
  });

  it("every message queued before the kill reaches the hub after the restart, none twice", async (t) => {
    const registrationId = "outbox-kill-1";
    const key = world.enroll(registrationId);
    await writeFile(join(userDir!, "flows.json"), JSON.stringify(flows(world, registrationId)));
    await writeFile(
      join(userDir!, "flows_cred.json"),
      JSON.stringify({ "dps-config": { caPem: world.emulator.caPem }, device: { symmetricKey: key } }),
    );
    await world.proxy.refuse();
    nodeRed = await startNodeRed({ packageDir: repoRoot, userDir });
    const answer = await fetch(`${nodeRed.url}/burst`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ from: 1, count: COUNT }),
    });
    assert.equal(answer.status, 200);
    const log = join(userDir!, "azure-iot-outbox", "device.log");
    const deadline = Date.now() + 20_000;
    while (linesIn(log) < COUNT && Date.now() < deadline) await sleep(50);
    const kept = linesIn(log);
    assert.equal(kept, COUNT, `${kept} messages in the disk outbox\n${nodeRed.log().slice(-2000)}`);
    await nodeRed.kill();
    nodeRed = undefined;
    assert.deepEqual(world.receivedBy(registrationId), [], "nothing reached the hub before the kill");

    await world.proxy.accept();
    nodeRed = await startNodeRed({ packageDir: repoRoot, userDir });
    const sent = Array.from({ length: COUNT }, (_, i) => `kill-${String(i + 1).padStart(5, "0")}`);
    const until = Date.now() + 60_000;
    while (account(sent, world.receivedBy(registrationId)).missing.length > 0 && Date.now() < until) {
      await sleep(100);
    }
    await sleep(500);
    const delivery = account(sent, world.receivedBy(registrationId));
    assert.deepEqual(delivery.missing, [], nodeRed.log().slice(-2000));
    assert.deepEqual(delivery.outOfOrder, []);
    assert.equal(delivery.duplicates, 0, "nothing was in flight at the kill");
    t.diagnostic(
      `in the disk outbox at the kill: ${kept}; received after the restart: ${delivery.received}; ` +
        `duplicates: ${delivery.duplicates}`,
    );
  });
});
