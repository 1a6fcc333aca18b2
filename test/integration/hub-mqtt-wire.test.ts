// The hub's MQTT endpoint on the wire, for what the device SDK never sends: malformed CONNECTs, unsupported
// subscriptions, publishes the hub does not allow. A raw MQTT 3.1.1 client over TLS (mqtt-packet).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { generate, parser as createParser, type Packet } from "mqtt-packet";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { startHub, type Hub } from "../../src/emulator/hub/index.js";
import { HUB, hubWaits, registerSasDevice } from "../support/hub-fixture.js";
import { createTestPki, type TestPki } from "../support/test-certs.js";

const { withTimeout } = hubWaits(10_000);

interface RawClient {
  send(packet: Packet): void;
  /** The next packet from the hub. */
  next(): Promise<Packet>;
  /** Resolves when the hub closed the connection. */
  closed: Promise<void>;
  socket: TLSSocket;
}

describe("hub MQTT endpoint on the wire", () => {
  let pki: TestPki;
  let hub: Hub;
  const key = randomBytes(32).toString("base64");

  before(async () => {
    pki = createTestPki();
    hub = await startHub({
      tls: { key: pki.serverKey, cert: pki.serverCert },
      hostNames: [HUB],
      mqttPort: 0,
    });
    registerSasDevice(hub, "wire-1", key);
    registerSasDevice(hub, "wire-2", key);
  });

  after(async () => {
    await hub.close();
  });

  async function rawClient(): Promise<RawClient> {
    const socket = tlsConnect({
      host: "127.0.0.1",
      port: hub.mqttPort ?? 0,
      servername: HUB,
      ca: pki.caCert,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    const parser = createParser({ protocolVersion: 4 });
    const queue: Packet[] = [];
    const waiting: ((packet: Packet) => void)[] = [];
    parser.on("packet", (packet: Packet) => {
      const waiter = waiting.shift();
      if (waiter) waiter(packet);
      else queue.push(packet);
    });
    socket.on("data", (chunk: Buffer) => parser.parse(chunk));
    socket.on("error", () => undefined);
    return {
      socket,
      send: (packet) => socket.write(generate(packet)),
      next: () =>
        withTimeout(
          new Promise<Packet>((resolve) => {
            const queued = queue.shift();
            if (queued) resolve(queued);
            else waiting.push(resolve);
          }),
          "packet from the hub",
        ),
      closed: withTimeout(new Promise<void>((resolve) => socket.once("close", () => resolve())), "close"),
    };
  }

  async function token(deviceId: string): Promise<string> {
    const expiry = Math.floor(Date.now() / 1000) + 600;
    return buildSasToken(`${HUB}:${hub.mqttPort}/devices/${deviceId}`, expiry, (data) =>
      hmacSha256(Buffer.from(key, "base64"), data),
    );
  }

  async function connack(fields: { clientId: string; username: string; password?: string }): Promise<number> {
    const client = await rawClient();
    client.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      clientId: fields.clientId,
      username: fields.username,
      ...(fields.password !== undefined ? { password: Buffer.from(fields.password) } : {}),
    });
    const packet = await client.next();
    assert.equal(packet.cmd, "connack");
    await client.closed.catch(() => client.socket.destroy());
    return (packet as { returnCode: number }).returnCode;
  }

  async function connected(deviceId: string): Promise<RawClient> {
    const client = await rawClient();
    client.send({
      cmd: "connect",
      protocolId: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      clientId: deviceId,
      username: `${HUB}:${hub.mqttPort}/${deviceId}/?api-version=2021-04-12`,
      password: Buffer.from(await token(deviceId)),
    });
    const packet = await client.next();
    assert.deepEqual([packet.cmd, (packet as { returnCode?: number }).returnCode], ["connack", 0]);
    return client;
  }

  it("answers CONNACK 4, 2 and 5 for a bad user name, a client id of another device and another device's token", async () => {
    const password = await token("wire-1");
    assert.equal(await connack({ clientId: "wire-1", username: "wire-1", password }), 4);
    assert.equal(
      await connack({
        clientId: "wire-1",
        username: "other-hub.example/wire-1/?api-version=2021-04-12",
        password,
      }),
      4,
    );
    assert.equal(
      await connack({
        clientId: "wire-2",
        username: `${HUB}:${hub.mqttPort}/wire-1/?api-version=x`,
        password,
      }),
      2,
    );
    assert.equal(
      await connack({
        clientId: "wire-2",
        username: `${HUB}:${hub.mqttPort}/wire-2/?api-version=x`,
        password,
      }),
      5,
    );
    assert.equal(await connack({ clientId: "wire-1", username: `${HUB}:${hub.mqttPort}/wire-1/` }), 5);
  });

  it("closes a connection whose first packet is not CONNECT", async () => {
    const client = await rawClient();
    client.send({ cmd: "pingreq" });
    await client.closed;
  });

  it("grants at most QoS 1 and refuses subscriptions to other topics", async () => {
    const client = await connected("wire-1");
    client.send({
      cmd: "subscribe",
      messageId: 7,
      subscriptions: [
        { topic: "$iothub/twin/res/#", qos: 2 },
        { topic: "devices/wire-2/messages/devicebound/#", qos: 1 },
        { topic: "#", qos: 0 },
        { topic: "$iothub/methods/POST/#", qos: 0 },
      ],
    });
    const suback = (await client.next()) as { cmd: string; messageId: number; granted: number[] };
    assert.deepEqual([suback.cmd, suback.messageId, suback.granted], ["suback", 7, [1, 128, 128, 0]]);
    client.send({
      cmd: "publish",
      topic: "$iothub/twin/GET/?$rid=42",
      payload: Buffer.from(" "),
      qos: 0,
      dup: false,
      retain: false,
    });
    const answer = (await client.next()) as { cmd: string; topic: string; payload: Buffer };
    assert.equal(answer.topic, "$iothub/twin/res/200/?$rid=42");
    assert.deepEqual(Object.keys(JSON.parse(answer.payload.toString()) as object), ["desired", "reported"]);
    client.socket.destroy();
  });

  it("closes the connection on telemetry for another device and on QoS 2", async () => {
    const forOther = await connected("wire-1");
    forOther.send({
      cmd: "publish",
      topic: "devices/wire-2/messages/events/",
      payload: Buffer.from("x"),
      qos: 1,
      messageId: 1,
      dup: false,
      retain: false,
    });
    await forOther.closed;
    const qos2 = await connected("wire-1");
    qos2.send({
      cmd: "publish",
      topic: "devices/wire-1/messages/events/",
      payload: Buffer.from("x"),
      qos: 2,
      messageId: 2,
      dup: false,
      retain: false,
    });
    await qos2.closed;
    assert.equal(hub.service.recentTelemetry(HUB, "wire-2").length, 0);
    assert.equal(hub.service.recentTelemetry(HUB, "wire-1").length, 0);
  });

  it("closes the older connection when the same device connects again", async () => {
    const first = await connected("wire-2");
    const second = await connected("wire-2");
    await first.closed;
    assert.equal(hub.service.isConnected(HUB, "wire-2"), true);
    second.socket.destroy();
  });
});
