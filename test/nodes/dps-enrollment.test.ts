// The end-of-line station nodes against the emulator's DPS service API and a real swtpm: tpm identity ->
// dps enrollment -> the existing device/provision nodes; etags, bulk, a wrong key, TPM failures, secrets.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import dpsServiceNode from "../../src/nodes/azure-iot-dps-service.js";
import enrollmentNode from "../../src/nodes/azure-iot-dps-enrollment.js";
import tpmIdentityNode from "../../src/nodes/azure-iot-tpm-identity.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";
import {
  allNodes,
  getNode,
  helper,
  messageMatching,
  startServer,
  stopServer,
  type FlowNode,
} from "../support/node-red.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

// The existing node types as registered on this branch (renamed to provisio-azure-* elsewhere).
const TPM_CONFIG_TYPE = "provisio-azure-tpm";
const DPS_CONFIG_TYPE = "provisio-azure-dps";
const DEVICE_TYPE = "provisio-azure-device";
const PROVISION_TYPE = "provisio-azure-provision";

const stationNodes = [
  ...(allNodes as unknown as unknown[]),
  dpsServiceNode,
  enrollmentNode,
  tpmIdentityNode,
] as unknown as Parameters<typeof helper.load>[0];

interface Caught {
  error: { message: string; source: { id: string } };
  dps?: { error?: { kind?: string; status?: number } };
}

interface EnrollmentAnswer {
  payload: Record<string, unknown> & { etag?: string };
  dps: Record<string, unknown>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

describe("end-of-line station: tpm identity and dps enrollment nodes", () => {
  let dataDir: string;
  let emulator: Emulator;
  let tpm: TestTpm;
  const secrets: string[] = [];
  let endorsementKey: string;

  /** The station flow: identity -> enrollment, plus the existing device and provision nodes. */
  function stationFlow(extra: FlowNode[] = []): FlowNode[] {
    return [
      { id: "tab", type: "tab" },
      { id: "tpm-config", type: TPM_CONFIG_TYPE, ...tpm.connection },
      { id: "service", type: "provisio-azure-dps-service", caSource: "text", endpoint: "" },
      { id: "identity", type: "provisio-azure-tpm-identity", z: "tab", tpm: "tpm-config", wires: [["read"]] },
      { id: "read", type: "helper", z: "tab" },
      {
        id: "enroll",
        type: "provisio-azure-dps-enrollment",
        z: "tab",
        service: "service",
        operation: "topic",
        batchSize: 10,
        wires: [["answers"]],
      },
      { id: "answers", type: "helper", z: "tab" },
      { id: "catcher", type: "catch", z: "tab", scope: null, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "tab" },
      ...extra,
    ];
  }

  async function load(
    flow: FlowNode[],
    credentials: Record<string, Record<string, string>> = {},
  ): Promise<void> {
    await helper.load(stationNodes, flow, {
      service: { connectionString: emulator.connectionStrings.dpsService, caPem: emulator.caPem },
      "dps-config": { caPem: emulator.caPem },
      ...credentials,
    });
  }

  /** Sends `msg` to the enrollment node; resolves with its answer, or rejects with what Catch got. */
  function enroll(msg: Record<string, unknown>): Promise<EnrollmentAnswer> {
    const answer = messageMatching<EnrollmentAnswer>("answers", () => true, 30_000);
    const caught = messageMatching<Caught>("caught", (m) => m.error.source.id === "enroll", 30_000);
    getNode("enroll").receive(msg);
    return Promise.race([
      answer,
      caught.then((c) => Promise.reject(Object.assign(new Error(c.error.message), { caught: c }))),
    ]);
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "provisio-station-"));
    emulator = await startEmulator({ dataDir });
    tpm = await startTestTpm();
    const client = new TpmSecurityClient(tpm.connection);
    endorsementKey = (await client.getEndorsementKey()).toString("base64");
    await client.close();
    secrets.push(/SharedAccessKey=([^;]+)/.exec(emulator.connectionStrings.dpsService)?.[1] ?? "missing");
    await startServer();
  });

  afterEach(async () => {
    // nothing secret in any log line of the test's runtime
    const log = helper.log();
    const lines = (log?.args ?? []).map((args: unknown[]) => JSON.stringify(args));
    for (const secret of secrets) {
      assert.equal(
        lines.filter((line: string) => line.includes(secret)).length,
        0,
        "a secret reached the log",
      );
    }
    assert.equal(lines.filter((line: string) => /SharedAccessSignature sr=/.test(line)).length, 0);
    await helper.unload();
  });

  after(async () => {
    await stopServer();
    await emulator?.close();
    await tpm?.dispose();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("enrolls a fresh TPM from a flow, then the existing nodes provision and connect it", async () => {
    const flow = stationFlow([
      {
        id: "dps-config",
        type: DPS_CONFIG_TYPE,
        globalEndpoint: emulator.endpoints.dps.amqp,
        idScope: emulator.idScope,
        transport: "amqp",
        caSource: "text",
      },
      {
        id: "device",
        type: DEVICE_TYPE,
        dps: "dps-config",
        attestation: "tpm",
        tpm: "tpm-config",
        outboxLimit: 10,
        outboxOverflow: "drop-oldest",
      },
      {
        id: "provision",
        type: PROVISION_TYPE,
        z: "tab",
        device: "device",
        connectOnDeploy: false,
        wires: [["states"]],
      },
      { id: "states", type: "helper", z: "tab" },
    ]);
    await load(flow);

    const read = messageMatching<{
      payload: { registrationId: string; endorsementKey: string };
      tpm: Record<string, unknown>;
    }>("read", () => true, 30_000);
    getNode("identity").receive({ payload: "board on the test bed" });
    const identity = await read;
    assert.match(identity.payload.registrationId, /^[a-z0-9]{20,}$/);
    assert.ok(Buffer.from(identity.payload.endorsementKey, "base64").length > 256, "a TPM2B_PUBLIC RSA EK");
    assert.equal(identity.tpm.manufacturer, "IBM");
    assert.match(String(identity.tpm.firmwareVersion), /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(emulator.dps.store.getIndividualEnrollment(identity.payload.registrationId), undefined);

    // the ERP stand-in adds the customer's tags
    const answer = await enroll({
      payload: { ...identity.payload, tags: { customer: "ACME", order: "4711" }, desired: { interval: 30 } },
    });
    assert.equal(answer.dps.action, "created");
    assert.equal(answer.payload.registrationId, identity.payload.registrationId);
    assert.match(String(answer.payload.etag), /.+/);
    assert.deepEqual(answer.payload.attestation, {
      type: "tpm",
      tpm: { endorsementKey: identity.payload.endorsementKey },
    });
    const stored = emulator.dps.store.getIndividualEnrollment(identity.payload.registrationId);
    assert.equal(stored?.etag, answer.payload.etag);

    const connected = messageMatching<{ payload: string; iothub: { deviceId?: string } }>(
      "states",
      (m) => m.payload === "connected",
      30_000,
    );
    getNode("provision").receive({ topic: "connect" });
    const state = await connected;
    assert.equal(state.iothub.deviceId, identity.payload.registrationId);
    const twin = emulator.hub.service.getTwin(
      emulator.endpoints.hub.hostName,
      identity.payload.registrationId,
    );
    assert.deepEqual(twin?.tags, { customer: "ACME", order: "4711" });
    assert.equal(twin?.properties.desired.interval, 30);
  });

  it("refuses to overwrite without the etag, refuses a stale etag, updates with the current one or msg.force", async () => {
    await load(stationFlow());
    const registrationId = "press-" + randomBytes(3).toString("hex");
    const ek = endorsementKey; // a real EK: DPS checks its TPM public format
    const first = await enroll({ payload: { registrationId, endorsementKey: ek } });

    await assert.rejects(
      enroll({ payload: { registrationId, endorsementKey: ek, tags: { line: "B" } } }),
      /exists already.*etag.*msg\.force/,
    );

    const current = await enroll({ topic: "get", payload: registrationId });
    assert.equal(current.payload.etag, first.payload.etag);
    const updated = await enroll({ payload: { ...current.payload, tags: { line: "A" } } });
    assert.equal(updated.dps.action, "updated");
    assert.notEqual(updated.payload.etag, first.payload.etag);

    // a second station still holding the first etag is refused: its change would undo line A
    const stale = await enroll({
      payload: { registrationId, endorsementKey: ek, etag: first.payload.etag, tags: { line: "C" } },
    }).then(
      () => undefined,
      (error: Error & { caught?: Caught }) => error,
    );
    assert.ok(stale, "the stale update was refused");
    assert.match(stale.message, /412.*changed since its etag was read/);
    assert.equal(stale.caught?.dps?.error?.kind, "etagMismatch");
    assert.deepEqual(emulator.dps.store.getIndividualEnrollment(registrationId)?.initialTwin?.tags, {
      line: "A",
    });

    const forced = await enroll({
      payload: { registrationId, endorsementKey: ek, tags: { line: "D" } },
      force: true,
    });
    assert.equal(forced.dps.action, "written");
    assert.deepEqual(emulator.dps.store.getIndividualEnrollment(registrationId)?.initialTwin?.tags, {
      line: "D",
    });

    const removed = await enroll({ topic: "delete", payload: { registrationId, etag: forced.payload.etag } });
    assert.deepEqual(removed.payload, { registrationId, deleted: true });
    assert.equal(emulator.dps.store.getIndividualEnrollment(registrationId), undefined);
  });

  it("a pallet of 50 in bulk with one bad item: that item is reported, the other 49 are created", async () => {
    await load(stationFlow());
    const prefix = "pallet-" + randomBytes(2).toString("hex");
    const items: Array<Record<string, unknown>> = Array.from({ length: 50 }, (_, i) => ({
      registrationId: `${prefix}-${i}`,
      symmetricKey: true,
      tags: { slot: i },
    }));
    items[17] = { registrationId: "bad id!", symmetricKey: true };

    const caught = messageMatching<Caught>("caught", (m) => m.error.source.id === "enroll", 30_000);
    const answered = messageMatching<{
      payload: { succeeded: string[]; failed: Array<Record<string, unknown>>; total: number };
      dps: { batches: Array<{ registrationIds: string[] }> };
    }>("answers", () => true, 30_000);
    getNode("enroll").receive({ payload: items });
    const answer = await answered;
    assert.equal(answer.payload.total, 50);
    assert.equal(answer.payload.succeeded.length, 49);
    assert.equal(answer.payload.failed.length, 1);
    assert.equal(answer.payload.failed[0]?.index, 17);
    assert.equal(answer.payload.failed[0]?.registrationId, "bad id!");
    assert.equal(Math.floor(Number(answer.payload.failed[0]?.errorCode) / 1000), 400);
    assert.equal(answer.dps.batches.length, 5);
    assert.ok(answer.dps.batches.every((b) => b.registrationIds.length <= 10));
    assert.match((await caught).error.message, /1 of 50 enrollment\(s\) failed: #17 bad id!/);

    const stored = emulator.dps.store
      .listIndividualEnrollments()
      .filter((e) => e.registrationId.startsWith(prefix));
    assert.equal(stored.length, 49);
    assert.equal(emulator.dps.store.getIndividualEnrollment(`${prefix}-17`), undefined);
  });

  it("bulk updates under etags (a stale one is refused per item) and bulk deletes", async () => {
    await load(stationFlow());
    const ids = ["crate-a", "crate-b", "crate-c"].map((id) => `${id}-${randomBytes(2).toString("hex")}`);
    const created = (
      await enroll({ payload: ids.map((registrationId) => ({ registrationId, symmetricKey: true })) })
    ).payload as unknown as { succeeded: string[] };
    assert.deepEqual(created.succeeded, ids);
    // one at a time: each enroll() waits for the next answer
    const first = (await enroll({ topic: "get", payload: ids[0] })).payload;
    const second = (await enroll({ topic: "get", payload: ids[1] })).payload;
    assert.equal(second.registrationId, ids[1]);

    const caught = messageMatching<Caught>("caught", (m) => m.error.source.id === "enroll", 30_000);
    const updated = await enroll({
      payload: [
        { ...first, initialTwin: { tags: { crate: 1 } } },
        { ...second, etag: '"an-etag-from-yesterday"', initialTwin: { tags: { crate: 2 } } },
      ],
    });
    const report = updated.payload as unknown as {
      succeeded: string[];
      failed: Array<{ index: number; errorCode: number }>;
    };
    assert.deepEqual(report.succeeded, [ids[0]]);
    assert.deepEqual(
      report.failed.map((f) => [f.index, Math.floor(f.errorCode / 1000)]),
      [[1, 412]],
      JSON.stringify(report.failed),
    );
    assert.match((await caught).error.message, /1 of 2 enrollment\(s\) failed: #1 /);
    assert.deepEqual(emulator.dps.store.getIndividualEnrollment(ids[0])?.initialTwin?.tags, { crate: 1 });
    assert.equal(
      emulator.dps.store.getIndividualEnrollment(ids[1])?.initialTwin,
      undefined,
      "the stale update changed nothing",
    );

    const deleted = await enroll({ topic: "delete", payload: ids });
    assert.deepEqual((deleted.payload as unknown as { succeeded: string[] }).succeeded, ids);
    for (const id of ids) assert.equal(emulator.dps.store.getIndividualEnrollment(id), undefined);
  });

  it("a wrong service key is refused, and the error names the cause but no key", async () => {
    const wrongKey = randomBytes(32).toString("base64");
    secrets.push(wrongKey);
    await load(stationFlow(), {
      service: {
        connectionString: emulator.connectionStrings.dpsService.replace(
          /SharedAccessKey=[^;]+/,
          `SharedAccessKey=${wrongKey}`,
        ),
        caPem: emulator.caPem,
      },
    });
    const refused = await enroll({ payload: { registrationId: "never", symmetricKey: true } }).then(
      () => undefined,
      (error: Error & { caught?: Caught }) => error,
    );
    assert.ok(refused);
    assert.match(refused.message, /401.*check the connection string/);
    assert.equal(refused.caught?.dps?.error?.kind, "unauthorized");
    for (const secret of secrets) assert.equal(refused.message.includes(secret), false);
    // the log the checks after each test read holds this run (a caught error itself is not logged)
    const logged = (helper.log()?.args ?? []).map((args: unknown[]) => JSON.stringify(args));
    assert.ok(logged.some((line: string) => line.includes("node.provisio-azure-dps-enrollment.done")));
    assert.equal(emulator.dps.store.getIndividualEnrollment("never"), undefined);
  });

  it("an untrusted service certificate and a closed port are named as such", async () => {
    const flow = stationFlow();
    Object.assign(
      flow.find((n) => n.id === "service")!,
      { caSource: "none" },
    );
    await load(flow);
    const untrusted = await enroll({ topic: "get", payload: "x" }).then(
      () => undefined,
      (error: Error) => error,
    );
    assert.match(
      String(untrusted?.message),
      /TLS certificate of DPS service .* is not trusted.*check the trusted CA/,
    );
    await helper.unload();

    const closed = stationFlow();
    Object.assign(
      closed.find((n) => n.id === "service")!,
      { endpoint: `127.0.0.1:${await freePort()}` },
    );
    await load(closed);
    const refused = await enroll({ topic: "get", payload: "x" }).then(
      () => undefined,
      (error: Error) => error,
    );
    assert.match(
      String(refused?.message),
      /nothing listens on DPS service 127\.0\.0\.1:\d+ \(connection refused\)/,
    );
  });

  it("keeps the connection string in credentials, out of the flow", () => {
    const registry = (
      helper as unknown as {
        _redNodes: { getCredentialDefinition(type: string): Record<string, { type: string }> };
      }
    )._redNodes;
    assert.deepEqual(registry.getCredentialDefinition("provisio-azure-dps-service"), {
      connectionString: { type: "password" },
      caPem: { type: "text" },
    });
  });

  it("takes the connection string from an environment variable named in the flow, when no credential is set", async () => {
    const flow = stationFlow();
    Object.assign(
      flow.find((n) => n.id === "service")!,
      { connectionStringEnv: "TEST_DPS_SERVICE_CS" },
    );
    await helper.load(stationNodes, flow, { service: { caPem: emulator.caPem } });
    delete process.env.TEST_DPS_SERVICE_CS;
    await assert.rejects(enroll({ topic: "get", payload: "anything" }), /TEST_DPS_SERVICE_CS .* is not set/);
    process.env.TEST_DPS_SERVICE_CS = emulator.connectionStrings.dpsService;
    try {
      await helper.unload();
      await helper.load(stationNodes, flow, { service: { caPem: emulator.caPem } });
      const created = await enroll({ payload: { registrationId: "from-env", symmetricKey: true } });
      assert.equal(created.dps.action, "created");
    } finally {
      delete process.env.TEST_DPS_SERVICE_CS;
    }
  });

  it("reaches a DPS on the default port 443 with nothing but the connection string, as Azure", async (t) => {
    // A loopback address of its own, so port 443 cannot collide with other tests' listeners.
    const host = "127.0.0.93";
    let azureLike: Emulator | undefined;
    try {
      azureLike = await startEmulator({ dataDir: join(dataDir, "port-443"), host, webPort: 443 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (["EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EPERM"].includes(code ?? "")) {
        return t.skip(`cannot listen on ${host}:443 here (${code})`);
      }
      throw error;
    }
    try {
      assert.match(
        azureLike.connectionStrings.dpsService,
        /^HostName=127\.0\.0\.93;/,
        "no port in the host name",
      );
      await helper.load(stationNodes, stationFlow(), {
        service: { connectionString: azureLike.connectionStrings.dpsService, caPem: azureLike.caPem },
      });
      const created = await enroll({ payload: { registrationId: "port-443", symmetricKey: true } });
      assert.equal(created.dps.action, "created");
      assert.ok(azureLike.dps.store.getIndividualEnrollment("port-443"));
    } finally {
      await azureLike.close();
    }
  });

  it("lists enrollments by query, page after page", async () => {
    await load(stationFlow());
    const answer = await enroll({ topic: "query", payload: "SELECT * FROM enrollments" });
    const items = answer.payload as unknown as Array<{ registrationId: string }>;
    assert.equal(items.length, emulator.dps.store.listIndividualEnrollments().length);
    assert.ok(items.length >= 49);
    assert.equal(answer.dps.count, items.length);
  });

  it("TPM failures reach Catch with a clear text: no TPM, not running, busy", async () => {
    const flow = stationFlow();
    Object.assign(
      flow.find((n) => n.id === "identity")!,
      { timeout: 2 },
    );
    await load(flow);
    const readFails = async (tpmConnection: Record<string, unknown>): Promise<string> => {
      const caught = messageMatching<Caught>("caught", (m) => m.error.source.id === "identity", 20_000);
      getNode("identity").receive({ payload: 1, tpmConnection });
      return (await caught).error.message;
    };
    assert.match(await readFails({ kind: "device", devicePath: "/dev/tpmrm97" }), /no TPM found/);
    assert.match(
      await readFails({ kind: "device", devicePath: join(dataDir, "not-a-tpm") }),
      /must be a TPM device/,
      "a path that cannot be a TPM is refused before anything is opened",
    );
    const closedPort = await freePort();
    assert.match(
      await readFails({ kind: "swtpm", host: "127.0.0.1", port: closedPort, ctrlPort: closedPort }),
      /connection refused.*swtpm/,
    );
    // another client holds the one-client swtpm
    const holder = await SwtpmTransport.open(
      tpm.connection.host,
      tpm.connection.port,
      tpm.connection.ctrlPort,
      5_000,
    );
    try {
      assert.match(await readFails({ ...tpm.connection }), /did not answer within 2 s: it is busy/);
    } finally {
      await holder.close();
    }
    // and the node works again once the TPM is free
    const read = messageMatching<{ payload: { registrationId: string } }>("read", () => true, 20_000);
    getNode("identity").receive({ payload: 1 });
    assert.ok((await read).payload.registrationId);
  });
});
