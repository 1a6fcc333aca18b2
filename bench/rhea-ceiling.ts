// The ceiling: a bare rhea sender (no SDK, no session) into the same emulator, as the hub's device endpoint
// sees a device over AMQP: TLS, a SAS token put on $cbs, a sender on the device's events address, then
// `count` telemetry messages of the same shape as the other figures, all offered at once (rhea sends as the
// hub's link credit allows); msg/s until the hub accepted the last one.
import { randomUUID } from "node:crypto";
import {
  create_container,
  message as rheaMessage,
  type Connection,
  type EventContext,
  type Sender,
} from "rhea";
import { buildSasToken, encodeUriComponentStrict, hmacSha256 } from "../src/common/sas.js";
import { samplePayload } from "./telemetry.js";

export interface RheaDevice {
  /** The assigned hub, "host:port" as the devices connect to it. */
  hub: string;
  deviceId: string;
  key: string;
  ca: string;
}

export interface RheaSender {
  send(count: number): Promise<number>;
  close(): void;
}

function once<T>(
  emitter: { once(event: string, listener: (context: EventContext) => void): unknown },
  event: string,
  pick: (context: EventContext) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within 30 s`)), 30_000);
    emitter.once(event, (context) => {
      clearTimeout(timer);
      resolve(pick(context));
    });
  });
}

export async function openRheaSender(device: RheaDevice): Promise<RheaSender> {
  const [host, port] = device.hub.split(":");
  const connection: Connection = create_container({ id: `bench-rhea-${randomUUID()}` }).connect({
    host,
    servername: host,
    hostname: host,
    port: Number(port),
    transport: "tls",
    ca: device.ca,
    reconnect: false,
  });
  connection.on("error", () => undefined);
  connection.on("disconnected", () => undefined);
  await once(connection, "connection_open", () => undefined);

  const resource = `${device.hub}/devices/${device.deviceId}`;
  const token = await buildSasToken(resource, Math.floor(Date.now() / 1000) + 3600, (data) =>
    hmacSha256(Buffer.from(device.key, "base64"), data),
  );
  const cbsReceiver = connection.open_receiver({ source: { address: "$cbs" } });
  const cbsSender = connection.open_sender({ target: { address: "$cbs" } });
  await once(cbsSender, "sendable", () => undefined);
  const reply = once(cbsReceiver, "message", (context) => context.message);
  cbsSender.send({
    message_id: randomUUID(),
    to: "$cbs",
    reply_to: "cbs",
    application_properties: {
      operation: "put-token",
      type: "servicebus.windows.net:sastoken",
      name: encodeUriComponentStrict(resource),
    },
    body: token,
  });
  const status = (await reply)?.application_properties?.["status-code"] as unknown;
  if (status !== 200) throw new Error(`the hub refused the token: ${String(status)}`);

  const sender: Sender = connection.open_sender({
    target: { address: `/devices/${device.deviceId}/messages/events` },
    autosettle: true,
  });
  await once(sender, "sendable", () => undefined);
  let sequence = 0;
  return {
    async send(count) {
      const started = performance.now();
      let offered = 0;
      let accepted = 0;
      await new Promise<void>((resolve, reject) => {
        const onAccepted = (): void => {
          accepted += 1;
          if (accepted < count) return;
          sender.off("accepted", onAccepted);
          sender.off("sendable", offer);
          resolve();
        };
        const offer = (): void => {
          while (offered < count && sender.sendable()) {
            offered += 1;
            sequence += 1;
            const sample = samplePayload(sequence);
            sender.send({
              message_id: `rhea-${sequence}`,
              content_type: "application/json",
              content_encoding: "utf-8",
              application_properties: sample.properties,
              body: rheaMessage.data_section(Buffer.from(JSON.stringify(sample.body))) as unknown,
            });
          }
        };
        sender.on("accepted", onAccepted);
        sender.on("sendable", offer);
        sender.once("rejected", (context: EventContext) =>
          reject(new Error(`the hub rejected a message: ${JSON.stringify(context.delivery?.remote_state)}`)),
        );
        offer();
      });
      return count / ((performance.now() - started) / 1000);
    },
    close() {
      const internals = connection as unknown as { socket?: unknown; abort_socket?(socket: unknown): void };
      if (internals.socket) internals.abort_socket?.(internals.socket);
    },
  };
}
