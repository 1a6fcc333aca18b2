// The hub's service-side AMQP: the official azure-iothub Client opens, sends C2D (properties, expiry, ack
// requests) to a device running the unmodified device SDK, and reads delivery feedback shaped as Azure shapes
// it, for the device's complete, reject and (past the max delivery count) abandon. The hub listens on 5671 of
// a loopback address of its own (the Client only dials amqps://{host}); the Client runs in a child process that
// trusts the emulator's CA through NODE_EXTRA_CA_CERTS. Then, on a bare hub: the C2D queue survives a restart,
// and a message a device holds past its lock is delivered again.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Client, Message } from "azure-iot-device";
import type { EventContext } from "rhea";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import type { C2dFeedbackEvent } from "../../src/emulator/hub/types.js";
import { CSdkHubClient, within } from "../support/c-sdk-amqp.js";
import { hubClientFor, provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";
import { createTestPki } from "../support/test-certs.js";

/** A loopback address of its own (not used by other test files), so 5671 is free for this file. */
const HOST = "127.0.0.80";
const ROOT = resolve(__dirname, "../..");

const SERVICE_SCRIPT = `
const { Client } = require("azure-iothub");
const { Message } = require("azure-iot-common");
const arg = JSON.parse(process.env.SDK_ARG);
const out = (value) => { process.stdout.write(JSON.stringify(value) + "\\n"); process.exit(0); };
(async () => {
  const client = Client.fromConnectionString(process.env.HUB_CS);
  await client.open();
  const receiver = await new Promise((resolve, reject) =>
    client.getFeedbackReceiver((err, r) => (err ? reject(err) : resolve(r))));
  const feedback = [];
  const wanted = new Set(arg.messages.map((m) => m.messageId));
  const finished = new Promise((resolve) => {
    receiver.on("message", (msg) => {
      const records = JSON.parse(msg.getData().toString());
      feedback.push({ contentType: msg.contentType, records });
      receiver.complete(msg, () => undefined);
      for (const record of records) wanted.delete(record.originalMessageId);
      if (wanted.size === 0) resolve();
    });
  });
  for (const m of arg.messages) {
    const message = new Message(m.body);
    message.messageId = m.messageId;
    message.ack = "full";
    if (m.contentType) message.contentType = m.contentType;
    // Epoch milliseconds: the SDK's AMQP encoder fails on a Date here.
    message.expiryTimeUtc = m.expiryMs;
    for (const [key, value] of Object.entries(m.properties)) message.properties.add(key, value);
    await client.send(arg.deviceId, message);
  }
  let unknownDevice;
  try { await client.send("no-such-device", new Message("x")); } catch (e) { unknownDevice = e.constructor.name; }
  await finished;
  await client.close();
  out({ feedback, unknownDevice });
})().catch((e) => out({ error: String(e && e.message || e), name: e && e.constructor && e.constructor.name }));
`;

describe("hub service-side AMQP with the official service SDK (port 5671)", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let skipReason: string | undefined;
  let device: Client | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-service-amqp-"));
    try {
      emulator = await startEmulator({ dataDir: join(dir, "data"), host: HOST, hubPort: 5671 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EADDRINUSE" || code === "EADDRNOTAVAIL" || code === "EPERM") {
        skipReason = `cannot listen on ${HOST}:5671 here (${code}); the service Client only dials 5671`;
      } else throw error;
    }
  });

  after(async () => {
    await device?.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("sends C2D with properties, expiry and ack, and gets Azure-shaped feedback for complete, reject and dead letter", async (t) => {
    if (!emulator) return t.skip(skipReason);
    const groupKey = Buffer.alloc(32, 8).toString("base64");
    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: "c2d-group",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
    } as never);
    const deviceId = "c2d-device";
    device = await hubClientFor(emulator, await provisionGroupDevice(emulator, groupKey, deviceId));
    const received: Message[] = [];
    device.on("message", (message: Message) => {
      received.push(message);
      const action = message.properties.getValue("action") as string;
      const done = (): void => undefined;
      if (action === "complete") device!.complete(message, done);
      else if (action === "reject") device!.reject(message, done);
      else device!.abandon(message, done);
    });
    await withTimeout(device.open(), "device open");

    const expiry = new Date(Date.now() + 10 * 60_000);
    const messages = [
      {
        messageId: "m-complete",
        body: "one",
        contentType: "text/plain",
        properties: { action: "complete", site: "lab" },
      },
      { messageId: "m-reject", body: "two", properties: { action: "reject" } },
      { messageId: "m-abandon", body: "three", properties: { action: "abandon" } },
    ].map((m) => ({ ...m, expiryMs: expiry.getTime() }));

    const child = spawn(process.execPath, ["-e", SERVICE_SCRIPT], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: emulator.caFile,
        HUB_CS: emulator.connectionStrings.hubService,
        SDK_ARG: JSON.stringify({ deviceId, messages }),
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const out = await withTimeout(
      new Promise<Record<string, unknown>>((resolvePromise, reject) => {
        child.once("exit", () => {
          try {
            resolvePromise(JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>);
          } catch {
            reject(new Error(`no result from the service SDK child; stderr: ${stderr}`));
          }
        });
      }),
      "service Client scenario",
    ).finally(() => child.kill("SIGKILL"));
    assert.equal(out.error, undefined, String(out.error));
    assert.equal(out.unknownDevice, "DeviceNotFoundError");

    const batches = out.feedback as Array<{ contentType: string; records: Array<Record<string, string>> }>;
    for (const batch of batches)
      assert.equal(batch.contentType, "application/vnd.microsoft.iothub.feedback.json");
    const byMessage = new Map(batches.flatMap((b) => b.records).map((r) => [r.originalMessageId, r]));
    assert.equal(byMessage.get("m-complete")?.statusCode, "Success");
    assert.equal(byMessage.get("m-reject")?.statusCode, "Rejected");
    assert.equal(byMessage.get("m-abandon")?.statusCode, "DeliveryCountExceeded");
    for (const record of byMessage.values()) {
      assert.equal(record.deviceId, deviceId);
      assert.ok(record.deviceGenerationId && record.enqueuedTimeUtc && record.description);
    }

    const first = received.find((m) => m.messageId === "m-complete");
    assert.equal((first?.getData() as Buffer | undefined)?.toString("utf8"), "one");
    assert.equal(first?.properties.getValue("site"), "lab");
    assert.equal(first?.contentType, "text/plain", "the content type reaches the device");
    assert.equal(first?.ack, "full");
    assert.equal(new Date(first?.expiryTimeUtc as string | Date).getTime(), expiry.getTime());
    assert.equal(received.filter((m) => m.messageId === "m-abandon").length, 10, "max delivery count 10");
  });
});

describe("hub C2D queue across restarts and lock expiry", () => {
  const pki = createTestPki();
  const key = Buffer.alloc(32, 9).toString("base64");
  let dir: string;
  let hub: Hub | undefined;
  const clients: CSdkHubClient[] = [];

  const start = (c2dLockTimeoutMs?: number) =>
    startHub({
      tls: { key: pki.serverKey, cert: pki.serverCert },
      hostNames: ["localhost"],
      dataFile: join(dir, "hub.json"),
      ...(c2dLockTimeoutMs !== undefined ? { c2dLockTimeoutMs } : {}),
    });

  async function connectedReceiver(deviceId: string) {
    const client = await CSdkHubClient.open({
      address: "127.0.0.1",
      port: hub!.port,
      hostName: "localhost",
      ca: pki.caCert,
    });
    clients.push(client);
    const audience = `localhost/devices/${deviceId}`;
    const token = await buildSasToken(audience, Math.floor(Date.now() / 1000) + 600, (data) =>
      hmacSha256(Buffer.from(key, "base64"), data),
    );
    assert.equal(await client.putToken(audience, token), 200);
    return (await client.receiver(client.address(deviceId, "messages/devicebound"))).receiver;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-c2d-queue-"));
  });

  after(async () => {
    for (const client of clients) client.close();
    await hub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps a queued message across a restart and delivers it when the device connects", async () => {
    hub = await start();
    hub.registry.upsertDevice({
      hubHostName: "localhost",
      deviceId: "offline-device",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    hub.service.sendCloudToDevice("localhost", "offline-device", { body: "kept", messageId: "kept-1" });
    await hub.close();
    hub = await start();
    const receiver = await connectedReceiver("offline-device");
    const delivered = within(
      new Promise<EventContext>((resolvePromise) => receiver.once("message", resolvePromise)),
      "C2D after restart",
    );
    receiver.add_credit(1);
    const context = await delivered;
    assert.equal(context.message?.message_id, "kept-1");
    assert.equal(String((context.message?.body as { content: Buffer }).content), "kept");
    context.delivery?.accept();
    await hub.close();
    hub = undefined;
  });

  it("delivers again a message held past its lock, and ignores the stale settlement", async () => {
    hub = await start(300);
    hub.registry.upsertDevice({
      hubHostName: "localhost",
      deviceId: "slow-device",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    const feedback: C2dFeedbackEvent[] = [];
    hub.service.on("c2dFeedback", (event: C2dFeedbackEvent) => feedback.push(event));
    const receiver = await connectedReceiver("slow-device");
    const deliveries: EventContext[] = [];
    const twoDeliveries = within(
      new Promise<void>((resolvePromise) =>
        receiver.on("message", (context: EventContext) => {
          deliveries.push(context);
          if (deliveries.length === 2) resolvePromise();
        }),
      ),
      "the message delivered twice",
    );
    receiver.add_credit(5);
    hub.service.sendCloudToDevice("localhost", "slow-device", { body: "locked", messageId: "lock-1" });
    await twoDeliveries;
    assert.deepEqual(
      deliveries.map((d) => d.message?.message_id),
      ["lock-1", "lock-1"],
    );
    deliveries[0]?.delivery?.accept(); // the lock expired: no effect
    deliveries[1]?.delivery?.accept();
    await within(
      new Promise<void>((resolvePromise) => {
        const check = (): void => {
          if (feedback.some((event) => event.outcome === "completed")) resolvePromise();
          else setTimeout(check, 20);
        };
        check();
      }),
      "completed feedback",
    );
    assert.deepEqual(
      feedback.map((event) => event.outcome),
      ["abandoned", "completed"],
    );
  });
});
