// The emulator against the Azure IoT C SDK's AMQP wire shapes (test/support/c-sdk-amqp.ts): DPS registration on
// "amqps://{host}/{idScope}/registrations/{id}" links, then the hub with SASL MSSBCBS, CBS with a ulong message-id,
// "amqps://{hub}/devices/{id}/..." links, max-message-size on attach and batched telemetry (0x80013700), plus
// malformed batches, which must be refused whole and never recorded.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { message as rheaMessage, type EventContext, type Message } from "rhea";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  batchLikeCSdk,
  C_SDK_BATCH_FORMAT,
  CSdkHubClient,
  dataSection,
  EMPTY_PROPERTIES_SECTION,
  encodeLikeCSdk,
  registerLikeCSdk,
  within,
  type CSdkEndpoint,
} from "../support/c-sdk-amqp.js";

const IOT_HUB_MESSAGE_LIMIT = 256 * 1024;

function splitHostPort(endpoint: string): { host: string; port: number } {
  const at = endpoint.lastIndexOf(":");
  return { host: endpoint.slice(0, at), port: Number(endpoint.slice(at + 1)) };
}

describe("emulator with the C SDK's AMQP wire shapes", () => {
  let dir: string;
  let emulator: Emulator;
  let hubEndpoint: CSdkEndpoint;
  const deviceKey = Buffer.alloc(32, 7).toString("base64");
  const registrationId = "c-sdk-device-1";
  const clients: CSdkHubClient[] = [];

  const sign = (resource: string, keyName?: string) =>
    buildSasToken(
      resource,
      Math.floor(Date.now() / 1000) + 600,
      (data) => hmacSha256(Buffer.from(deviceKey, "base64"), data),
      keyName,
    );

  /** A hub connection authorized for the device, as the C SDK opens it. */
  async function authorizedClient(): Promise<CSdkHubClient> {
    const client = await CSdkHubClient.open(hubEndpoint);
    clients.push(client);
    const audience = `${hubEndpoint.hostName}/devices/${registrationId}`;
    assert.equal(await client.putToken(audience, await sign(audience)), 200);
    return client;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-c-sdk-"));
    emulator = await startEmulator({ dataDir: join(dir, "data") });
    emulator.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: deviceKey, secondaryKey: deviceKey } },
      initialTwin: { tags: {}, properties: { desired: { interval: 30 } } },
    } as never);
    const dps = splitHostPort(emulator.endpoints.dps.amqp);
    const registration = await registerLikeCSdk({
      endpoint: { address: "127.0.0.1", port: dps.port, hostName: dps.host, ca: emulator.caPem },
      idScope: emulator.idScope,
      registrationId,
      sasToken: await sign(`${emulator.idScope}/registrations/${registrationId}`, "registration"),
    });
    assert.equal(registration.status, "assigned", JSON.stringify(registration));
    assert.equal(registration.registrationState?.assignedHub, emulator.endpoints.hub.hostName);
    assert.equal(registration.registrationState?.deviceId, registrationId);
    hubEndpoint = {
      address: "127.0.0.1",
      port: splitHostPort(emulator.endpoints.hub.amqp).port,
      hostName: emulator.endpoints.hub.hostName,
      ca: emulator.caPem,
    };
  });

  after(async () => {
    for (const client of clients) client.close();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("offers MSSBCBS, accepts a ulong CBS message-id, announces 256 KB and unpacks a batch with its properties", async () => {
    const client = await authorizedClient();
    const { sender, peerMaxMessageSize } = await client.sender(
      client.address(registrationId, "messages/events"),
    );
    assert.ok(peerMaxMessageSize >= IOT_HUB_MESSAGE_LIMIT, `max-message-size ${peerMaxMessageSize}`);

    const batch = batchLikeCSdk([
      encodeLikeCSdk({
        body: Buffer.from(JSON.stringify({ temperature: 21.5 })),
        messageId: "m-1",
        correlationId: "c-1",
        contentType: "application/json",
        contentEncoding: "utf-8",
        properties: { unit: "celsius", "iothub-creation-time-utc": "2026-01-01T00:00:00.000Z" },
        annotations: { "iothub-interface-id": "urn:azureiot:Security:SecurityAgent:1" },
      }),
      encodeLikeCSdk({ body: Buffer.from("second") }),
    ]);
    assert.deepEqual(await client.sendBatch(sender, batch), { state: "accepted" });

    const records = emulator.hub.service.recentTelemetry(emulator.endpoints.hub.hostName, registrationId);
    assert.equal(records.length, 2);
    const [first, second] = records;
    assert.equal(first?.body.toString(), JSON.stringify({ temperature: 21.5 }));
    assert.deepEqual(first?.properties, { unit: "celsius" });
    assert.equal(first?.systemProperties["iothub-creation-time-utc"], "2026-01-01T00:00:00.000Z");
    assert.equal(first?.systemProperties.messageId, "m-1");
    assert.equal(first?.systemProperties.correlationId, "c-1");
    assert.equal(first?.systemProperties.contentType, "application/json");
    assert.equal(first?.systemProperties.contentEncoding, "utf-8");
    assert.equal(first?.systemProperties["iothub-interface-id"], "urn:azureiot:Security:SecurityAgent:1");
    assert.equal(second?.body.toString(), "second");
    assert.deepEqual(second?.properties, {});
  });

  it("refuses malformed batches whole, records nothing, and keeps the link for the next good batch", async () => {
    const client = await authorizedClient();
    const { sender } = await client.sender(client.address(registrationId, "messages/events"));
    const hub = emulator.endpoints.hub.hostName;
    const before = emulator.hub.service.recentTelemetry(hub, registrationId).length;
    const good = encodeLikeCSdk({ body: Buffer.from("good") });
    const malformed: Array<[string, Buffer]> = [
      ["garbage bytes", Buffer.from([0xde, 0xad, 0xbe, 0xef])],
      ["no data sections", Buffer.from(EMPTY_PROPERTIES_SECTION)],
      ["an amqp-value body", rheaMessage.encode({ body: "not a batch" })],
      ["a data section that is not a message", batchLikeCSdk([good, Buffer.from("plain text")])],
      ["a message without a body", batchLikeCSdk([Buffer.from(EMPTY_PROPERTIES_SECTION)])],
      ["a truncated message", batchLikeCSdk([good.subarray(0, good.length - 2)])],
    ];
    for (const [what, payload] of malformed) {
      const outcome = await client.sendRaw(sender, payload, C_SDK_BATCH_FORMAT);
      assert.equal(outcome.state, "rejected", what);
      assert.equal((outcome as { condition?: string }).condition, "amqp:decode-error", what);
      assert.match(String((outcome as { description?: string }).description), /Malformed batch/, what);
    }
    assert.equal(emulator.hub.service.recentTelemetry(hub, registrationId).length, before);

    const unknownFormat = await client.sendRaw(sender, batchLikeCSdk([good]), 0x80013701);
    assert.equal(unknownFormat.state, "rejected");
    assert.equal(emulator.hub.service.recentTelemetry(hub, registrationId).length, before);

    assert.deepEqual(await client.sendBatch(sender, batchLikeCSdk([good])), { state: "accepted" });
    const after = emulator.hub.service.recentTelemetry(hub, registrationId);
    assert.equal(after.length, before + 1);
    assert.equal(after.at(-1)?.body.toString(), "good");
  });

  it("serves twin, C2D and methods on amqps:// addresses, with max-message-size on every device link", async () => {
    const client = await authorizedClient();
    const channel = { "com.microsoft:channel-correlation-id": `twin:${registrationId}` };
    const twinAddress = client.address(registrationId, "twin");
    const twinReceiver = await client.receiver(twinAddress, { properties: channel, autoaccept: true });
    const twinSender = await client.sender(twinAddress, channel);
    for (const link of [twinReceiver, twinSender])
      assert.ok(link.peerMaxMessageSize >= IOT_HUB_MESSAGE_LIMIT);
    const twinReply = within(
      new Promise<Message>((resolve) =>
        twinReceiver.receiver.once("message", (context: EventContext) => resolve(context.message!)),
      ),
      "twin GET reply",
    );
    twinSender.sender.send({
      correlation_id: "twin-get-1",
      message_annotations: { operation: "GET" },
      body: dataSection(Buffer.from(" ")),
    });
    const reply = await twinReply;
    assert.equal(reply.correlation_id, "twin-get-1");
    assert.equal((reply.message_annotations as Record<string, unknown>).status, 200);
    const twin = JSON.parse(String((reply.body as { content: Buffer }).content)) as {
      desired: Record<string, unknown>;
    };
    assert.equal(twin.desired.interval, 30);

    const c2d = await client.receiver(client.address(registrationId, "messages/devicebound"));
    assert.ok(c2d.peerMaxMessageSize >= IOT_HUB_MESSAGE_LIMIT);
    const c2dMessage = within(
      new Promise<EventContext>((resolve) => c2d.receiver.once("message", resolve)),
      "C2D message",
    );
    c2d.receiver.add_credit(1);
    emulator.hub.service.sendCloudToDevice(emulator.endpoints.hub.hostName, registrationId, {
      body: "hello device",
      messageId: "c2d-1",
    });
    const delivered = await c2dMessage;
    assert.equal(String((delivered.message!.body as { content: Buffer }).content), "hello device");
    delivered.delivery!.accept();

    const methodsAddress = client.address(registrationId, "methods/devicebound");
    const methodsChannel = { "com.microsoft:channel-correlation-id": registrationId };
    const methodRequests = await client.receiver(methodsAddress, {
      properties: methodsChannel,
      autoaccept: true,
    });
    const methodResponses = await client.sender(methodsAddress, methodsChannel);
    methodRequests.receiver.once("message", (context: EventContext) => {
      methodResponses.sender.send({
        correlation_id: context.message!.correlation_id,
        application_properties: { "IoThub-status": 200 },
        body: dataSection(Buffer.from(JSON.stringify({ rebooted: true }))),
      });
    });
    const result = await within(
      emulator.hub.service.invokeMethod(emulator.endpoints.hub.hostName, registrationId, {
        methodName: "reboot",
        payload: {},
        responseTimeoutInSeconds: 10,
      }),
      "method",
    );
    assert.deepEqual(result, { status: 200, payload: { rebooted: true } });
  });

  it("detaches an amqps:// link that names another hub", async () => {
    const client = await authorizedClient();
    await assert.rejects(
      client.sender(`amqps://other-hub.example.net/devices/${registrationId}/messages/events`),
      /amqp:not-found/,
    );
  });
});
