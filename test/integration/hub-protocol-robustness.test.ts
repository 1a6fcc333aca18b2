// What the emulated IoT Hub answers to input the device SDK would never send: CBS failures as status codes,
// unknown link addresses, malformed twin requests, garbage bytes. A raw rhea 3 client and raw TLS sockets talk
// to it on 127.0.0.1; after each case the hub must still serve.
import { randomBytes, randomUUID } from "node:crypto";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  create_container,
  message as rheaMessage,
  type Connection,
  type EventContext,
  type Message,
  type Receiver,
  type Sender,
} from "rhea";
import { buildSasToken, encodeUriComponentStrict, hmacSha256 } from "../../src/common/sas.js";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const HUB = "localhost";
const WAIT_MS = 10_000;

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A minimal AMQP client (rhea 3, no SASL, like the device SDK) with promise helpers. */
class RawAmqpClient {
  private cbs: { sender: Sender; receiver: Receiver } | undefined;

  private constructor(readonly connection: Connection) {}

  static async open(port: number, ca: string): Promise<RawAmqpClient> {
    const container = create_container({ id: `raw-${randomUUID()}` });
    const connection = container.connect({
      host: "127.0.0.1",
      hostname: HUB,
      servername: HUB,
      port,
      transport: "tls",
      ca,
      reconnect: false,
    });
    connection.on("error", () => undefined);
    connection.on("connection_error", () => undefined);
    await within(
      new Promise<void>((resolve) => connection.once("connection_open", () => resolve())),
      "connection_open",
    );
    return new RawAmqpClient(connection);
  }

  async sender(address: string, options: Record<string, unknown> = {}): Promise<Sender> {
    const sender = this.connection.open_sender({ target: { address }, ...options });
    await within(
      new Promise<void>((resolve) => sender.once("sendable", () => resolve())),
      `sendable ${address}`,
    );
    return sender;
  }

  async receiver(address: string): Promise<Receiver> {
    const receiver = this.connection.open_receiver({ source: { address } });
    await within(
      new Promise<void>((resolve) => receiver.once("receiver_open", () => resolve())),
      `attach ${address}`,
    );
    return receiver;
  }

  /** Attaches a link and resolves with the error the hub detached it with. */
  refusedAttach(address: string): Promise<{ condition?: string; description?: string }> {
    const sender = this.connection.open_sender({ target: { address } });
    sender.on("sender_error", () => undefined);
    return within(
      new Promise((resolve) =>
        sender.once("sender_close", (context: EventContext) => {
          resolve((context.sender?.error ?? {}) as { condition?: string; description?: string });
        }),
      ),
      `detach of ${address}`,
    );
  }

  nextMessage(receiver: Receiver): Promise<Message> {
    return within(
      new Promise((resolve) =>
        receiver.once("message", (context: EventContext) => resolve(context.message as Message)),
      ),
      "message",
    );
  }

  /** Puts a token on $cbs and resolves with the hub's reply. */
  async putToken(token: string, audience: string): Promise<Message> {
    this.cbs ??= { receiver: await this.receiver("$cbs"), sender: await this.sender("$cbs") };
    const { sender: cbsSender, receiver: cbsReceiver } = this.cbs;
    const reply = this.nextMessage(cbsReceiver);
    const messageId = randomUUID();
    cbsSender.send({
      message_id: messageId,
      to: "$cbs",
      reply_to: "cbs",
      application_properties: {
        operation: "put-token",
        type: "servicebus.windows.net:sastoken",
        name: audience,
      },
      body: token,
    });
    const answer = await reply;
    assert.equal(answer.correlation_id, messageId);
    return answer;
  }

  close(): void {
    // abort_socket stops rhea's heartbeat timer too (the hub asks for heartbeats), so the test process can exit.
    const internals = this.connection as unknown as {
      socket?: unknown;
      abort_socket?(socket: unknown): void;
    };
    if (internals.socket) internals.abort_socket?.(internals.socket);
  }
}

describe("IoT Hub emulator with malformed and unexpected input", () => {
  let pki: TestPki;
  let hub: Hub;
  const key = randomBytes(32).toString("base64");
  const clients: RawAmqpClient[] = [];

  async function open(): Promise<RawAmqpClient> {
    const client = await RawAmqpClient.open(hub.port, pki.caCert);
    clients.push(client);
    return client;
  }

  async function token(deviceId: string, signingKey = key): Promise<{ token: string; audience: string }> {
    const resource = `${HUB}:${hub.port}/devices/${deviceId}`;
    const sas = await buildSasToken(resource, Math.floor(Date.now() / 1000) + 3600, (data) =>
      hmacSha256(Buffer.from(signingKey, "base64"), data),
    );
    return { token: sas, audience: encodeUriComponentStrict(resource) };
  }

  /** Opens a fresh connection and checks that CBS still authorizes a good device. */
  async function assertHubServes(): Promise<void> {
    const client = await open();
    const good = await token("d1");
    const reply = await client.putToken(good.token, good.audience);
    assert.equal(reply.application_properties?.["status-code"], 200);
    client.close();
  }

  before(async () => {
    pki = createTestPki();
    hub = await startHub({ tls: { key: pki.serverKey, cert: pki.serverCert }, hostNames: [HUB] });
    hub.registry.upsertDevice({
      hubHostName: HUB,
      deviceId: "d1",
      status: "enabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await hub.close();
  });

  it("answers put-token with status 404 for an unknown device and 401 for a wrong key, as numbers", async () => {
    const client = await open();
    const unknown = await token("nobody");
    const unknownReply = await client.putToken(unknown.token, unknown.audience);
    assert.equal(unknownReply.application_properties?.["status-code"], 404);
    const wrong = await token("d1", randomBytes(32).toString("base64"));
    const wrongReply = await client.putToken(wrong.token, wrong.audience);
    assert.equal(wrongReply.application_properties?.["status-code"], 401);
    const garbage = await client.putToken("SharedAccessSignature nonsense", "x");
    assert.equal(garbage.application_properties?.["status-code"], 401);
    // A device link on a connection with no valid token is refused.
    assert.equal(
      (await client.refusedAttach("/devices/d1/messages/events")).condition,
      "amqp:unauthorized-access",
    );
    await assertHubServes();
  });

  it("detaches a link to an unknown address with amqp:not-found and keeps the connection", async () => {
    const client = await open();
    const refused = await client.refusedAttach("/devices/d1/nowhere");
    assert.equal(refused.condition, "amqp:not-found");
    const good = await token("d1");
    const reply = await client.putToken(good.token, good.audience);
    assert.equal(reply.application_properties?.["status-code"], 200);
    assert.equal(client.connection.is_open(), true);
  });

  it("answers malformed and over-limit reported patches with 400 and Azure's error body", async () => {
    const client = await open();
    const good = await token("d1");
    await client.putToken(good.token, good.audience);
    const twinSender = await client.sender("/devices/d1/twin", { snd_settle_mode: 1 });
    const twinReceiver = await client.receiver("/devices/d1/twin");
    const request = async (body: string): Promise<{ status: unknown; error: Record<string, unknown> }> => {
      const response = client.nextMessage(twinReceiver);
      const correlationId = randomUUID();
      twinSender.send({
        correlation_id: correlationId,
        message_annotations: { operation: "PATCH", resource: "/properties/reported" },
        body: rheaMessage.data_section(Buffer.from(body)) as unknown,
      });
      const answer = await response;
      assert.equal(answer.correlation_id, correlationId);
      const content = (answer.body as { content: Buffer }).content;
      return {
        status: answer.message_annotations?.status,
        error: JSON.parse(content.toString("utf8")) as Record<string, unknown>,
      };
    };
    const badJson = await request("{not json");
    assert.equal(badJson.status, 400);
    assert.equal(badJson.error.errorCode, 400004);
    const badKey = await request(JSON.stringify({ "has space": 1 }));
    assert.equal(badKey.status, 400);
    assert.match(String(badKey.error.message), /invalid characters/);
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let level = 0; level < 11; level += 1) deep = { [`level${level}`]: deep };
    assert.equal((await request(JSON.stringify(deep))).status, 400);
    const big: Record<string, string> = {};
    for (let index = 0; index < 9; index += 1) big[`k${index}`] = "x".repeat(4000);
    assert.equal((await request(JSON.stringify(big))).status, 400);
    assert.equal((await request(JSON.stringify({ tooLong: "x".repeat(4097) }))).status, 400);
    assert.equal((await request("[1,2]")).status, 400);
    // None of them changed the twin.
    assert.equal(hub.service.getTwin(HUB, "d1")?.properties.reported.$version, 1);
  });

  it("closes a connection that sends garbage after the AMQP header, and one that is not AMQP at all", async () => {
    const header = Buffer.from("AMQP\x00\x01\x00\x00", "latin1");
    const cases: { payload: Buffer; hubCloses: boolean }[] = [
      // A frame with an invalid type / size after a valid header: the hub ends the connection itself.
      { payload: Buffer.concat([header, Buffer.from([0, 0, 0, 8, 2, 9, 0, 0])]), hubCloses: true },
      { payload: Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"), hubCloses: true },
      // A frame that declares 4 GB: the hub waits for bytes that never come; our end must not harm it.
      {
        payload: Buffer.concat([header, Buffer.from([0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0])]),
        hubCloses: false,
      },
    ];
    const openBefore = hub.service.connectionCount();
    for (const { payload, hubCloses } of cases) {
      const socket = tlsConnect({ host: "127.0.0.1", port: hub.port, servername: HUB, ca: pki.caCert });
      socket.on("error", () => undefined);
      // Read (and drop) whatever the hub answers, or 'close' would wait for us to consume it.
      socket.resume();
      await within(
        new Promise<void>((resolve) => socket.once("secureConnect", () => resolve())),
        "TLS handshake",
      );
      const closed = within(
        new Promise<void>((resolve) => socket.once("close", () => resolve())),
        "socket close",
      );
      socket.write(payload);
      if (!hubCloses) socket.end();
      await closed;
    }
    assert.equal(hub.service.connectionCount(), openBefore);
    await assertHubServes();
  });
});
