// The AMQP endpoint at the wire level, with a plain rhea client: what DPS answers to requests the SDK would
// never send (bad JSON, unknown operations, links for another registration), and that a refused SASL
// exchange ends the connection.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { create_container, message as amqpMessage, type Connection, type EventContext } from "rhea";
import { buildSasToken, hmacSha256 } from "../../src/common/sas.js";
import { ID_SCOPE, startTestDps, symmetricKeyEnrollment, type TestDps } from "./dps-fixtures.js";

const WAIT_MS = 10_000;

describe("DPS emulator, AMQP wire behaviour", () => {
  let env: TestDps;
  const key = randomBytes(32).toString("base64");
  const registrationId = "wire-dev";
  const address = `${ID_SCOPE}/registrations/${registrationId}`;
  const token = () =>
    buildSasToken(
      address,
      Math.floor(Date.now() / 1000) + 600,
      (d) => hmacSha256(Buffer.from(key, "base64"), d),
      "registration",
    );

  before(async () => {
    env = await startTestDps();
    env.store.putIndividualEnrollment(symmetricKeyEnrollment(registrationId, key));
  });
  after(async () => {
    await env.dispose();
  });

  const open = (password: string): Connection => {
    const container = create_container({ id: `wire-test-${randomUUID()}` });
    // Unhandled, rhea throws connection errors (the refused SASL exchange) out of its event loop.
    container.on("error", () => undefined);
    container.on("connection_error", () => undefined);
    container.on("disconnected", () => undefined);
    return container.connect({
      host: "127.0.0.1",
      port: env.dps.ports.amqp!,
      transport: "tls",
      ca: env.pki.caCert,
      servername: "localhost",
      username: address,
      password,
      reconnect: false,
    });
  };

  it("refuses SASL PLAIN with a token signed by another key: the connection ends, never opens", async () => {
    const connection = open(
      await buildSasToken(
        address,
        Math.floor(Date.now() / 1000) + 600,
        () => Buffer.alloc(32),
        "registration",
      ),
    );
    await within(
      new Promise<void>((resolve) => connection.once("disconnected", () => resolve())),
      "the refused connection was not closed",
    );
    assert.equal(connection.is_open(), false);
  });

  it("rejects bad JSON, unknown operations and a missing operation, then answers a good register", async () => {
    const connection = open(await token());
    try {
      const answers: { correlation_id: unknown; body: unknown }[] = [];
      const receiver = connection.open_receiver({ source: { address } });
      receiver.on("message", (context: EventContext) => answers.push(context.message as never));
      const sender = connection.open_sender({ target: { address } });
      await within(
        new Promise<void>((resolve) => sender.once("sendable", () => resolve())),
        "sender never got credit",
      );

      const outcome = (properties: Record<string, unknown>, body: unknown) =>
        within(
          new Promise<{ state: string; condition?: string }>((resolve) => {
            const delivery = sender.send({
              correlation_id: randomUUID(),
              application_properties: properties,
              body,
            });
            const settle = (context: EventContext) => {
              if (context.delivery !== delivery) return;
              sender.removeListener("accepted", settle);
              sender.removeListener("rejected", settle);
              const remote = context.delivery.remote_state as { error?: { condition?: string } } | undefined;
              resolve({
                state: remote?.error ? "rejected" : "accepted",
                ...(remote?.error?.condition ? { condition: remote.error.condition } : {}),
              });
            };
            sender.on("accepted", settle);
            sender.on("rejected", settle);
          }),
          "no disposition",
        );

      const register = { "iotdps-operation-type": "iotdps-register", "iotdps-forceRegistration": false };
      assert.deepEqual(await outcome(register, amqpMessage.data_section(Buffer.from("{not json"))), {
        state: "rejected",
        condition: "com.microsoft:argument-error",
      });
      assert.deepEqual(await outcome({ "iotdps-operation-type": "iotdps-delete-everything" }, ""), {
        state: "rejected",
        condition: "amqp:not-implemented",
      });
      assert.deepEqual(
        await outcome(
          { "iotdps-operation-type": "iotdps-get-operationstatus", "iotdps-operation-id": "4.nope" },
          "",
        ),
        { state: "rejected", condition: "amqp:not-found" },
      );
      const good = await outcome(
        register,
        amqpMessage.data_section(Buffer.from(JSON.stringify({ registrationId }))),
      );
      assert.equal(good.state, "accepted");
      await within(
        waitFor(() => answers.length === 1),
        "no answer to the register request",
      );
      const body = JSON.parse((answers[0].body as { content: Buffer }).content.toString("utf8")) as {
        status: string;
      };
      assert.equal(body.status, "assigning");
    } finally {
      connection.close();
    }
  });

  it("refuses requests on links for another registration than the authenticated one", async () => {
    const connection = open(await token());
    try {
      const other = `${ID_SCOPE}/registrations/someone-else`;
      connection.open_receiver({ source: { address: other } });
      const sender = connection.open_sender({ target: { address: other } });
      await within(
        new Promise<void>((resolve) => sender.once("sendable", () => resolve())),
        "sender never got credit",
      );
      const condition = await within(
        new Promise<string | undefined>((resolve) => {
          sender.once("rejected", (context: EventContext) =>
            resolve((context.delivery?.remote_state as { error?: { condition?: string } }).error?.condition),
          );
          sender.once("accepted", () => resolve("accepted"));
          sender.send({
            correlation_id: randomUUID(),
            application_properties: { "iotdps-operation-type": "iotdps-register" },
            body: amqpMessage.data_section(Buffer.from("{}")) as unknown,
          });
        }),
        "no disposition",
      );
      assert.equal(condition, "amqp:unauthorized-access");
    } finally {
      connection.close();
    }
  });
});

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), WAIT_MS);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
}
