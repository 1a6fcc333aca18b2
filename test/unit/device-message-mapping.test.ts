import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AmqpMessage } from "azure-iot-amqp-base";
import { ValidationError } from "../../src/device/errors.js";
import { COMPONENT_PROPERTY, toHubMessage } from "../../src/device/message-mapping.js";

function properties(message: ReturnType<typeof toHubMessage>): Record<string, string> {
  const entries: [string, string][] = [];
  for (let i = 0; i < message.properties.count(); i++) {
    const item = message.properties.getItem(i);
    entries.push([item.key, String(item.value)]);
  }
  // fromEntries keeps a key named __proto__ as a property of its own.
  return Object.fromEntries(entries);
}

describe("telemetry -> azure-iot-device Message", () => {
  it("sends an object as UTF-8 JSON with content type and encoding", () => {
    const message = toHubMessage({ temperature: 21.5, ok: true });
    assert.equal(message.getBytes().toString("utf8"), '{"temperature":21.5,"ok":true}');
    assert.equal(message.contentType, "application/json");
    assert.equal(message.contentEncoding, "utf-8");
  });

  it("sends a string as it is, utf-8, without claiming JSON", () => {
    const message = toHubMessage("hello é");
    assert.equal(message.getBytes().toString("utf8"), "hello é");
    assert.equal(message.contentType, undefined);
    assert.equal(message.contentEncoding, "utf-8");
  });

  it("sends a Buffer byte for byte, with no content type or encoding", () => {
    const bytes = Buffer.from([0, 1, 2, 255]);
    const message = toHubMessage(bytes);
    assert.deepEqual(message.getBytes(), bytes);
    assert.equal(message.contentType, undefined);
    assert.equal(message.contentEncoding, undefined);
  });

  it("gives every message a fresh message id unless one is given", () => {
    const a = toHubMessage("x");
    const b = toHubMessage("x");
    assert.match(a.messageId, /^[0-9a-f-]{36}$/);
    assert.notEqual(a.messageId, b.messageId);
    assert.equal(toHubMessage("x", { messageId: "m-1" }).messageId, "m-1");
  });

  it("maps ids, content settings and application properties (as strings)", () => {
    const message = toHubMessage(
      { a: 1 },
      {
        messageId: "m-7",
        correlationId: "c-7",
        contentType: "application/vnd.acme+json",
        contentEncoding: "utf-16",
        properties: { unit: "C", count: 3, alarm: false },
      },
    );
    assert.equal(message.correlationId, "c-7");
    assert.equal(message.contentType, "application/vnd.acme+json");
    assert.equal(message.contentEncoding, "utf-16");
    assert.deepEqual(properties(message), { unit: "C", count: "3", alarm: "false" });
  });

  it("puts the Plug and Play component where the AMQP transport makes it the dt-subject annotation", () => {
    const message = toHubMessage({ t: 1 }, { component: "thermostat1" });
    const amqp = AmqpMessage.fromMessage(message);
    assert.equal(amqp.message_annotations?.["dt-subject"], "thermostat1");
    assert.equal(amqp.application_properties?.[COMPONENT_PROPERTY], undefined);
  });

  it("refuses what IoT Hub would refuse, before sending", () => {
    assert.throws(() => toHubMessage(Buffer.alloc(256 * 1024 + 1)), ValidationError);
    assert.throws(() => toHubMessage("x", { messageId: "bad id" }), ValidationError);
    assert.throws(() => toHubMessage("x", { properties: { [COMPONENT_PROPERTY]: "c" } }), /reserved/);
    assert.throws(
      () => toHubMessage("x", { properties: { nested: { a: 1 } as never } }),
      /string, number or boolean/,
    );
    assert.throws(() => toHubMessage("x", { properties: { "": "v" } }), /empty/);
  });
});

describe("telemetry -> Message edges", () => {
  it("refuses application properties that are not an object of names", () => {
    for (const bad of [["a"], "text", 5]) {
      assert.throws(
        () => toHubMessage({}, { properties: bad as unknown as Record<string, string> }),
        (error: Error) =>
          error instanceof ValidationError &&
          error.message === "telemetry properties must be an object of names to values",
      );
    }
  });

  it("sends a number or a boolean as its text", () => {
    assert.equal(toHubMessage(42 as unknown as string).getData(), "42");
    assert.equal(toHubMessage(true as unknown as string).getData(), "true");
  });

  it("names the field of a bad messageId or correlationId", () => {
    assert.throws(() => toHubMessage("x", { messageId: "bad id" }), /^ValidationError: messageId "bad id"/);
    assert.throws(() => toHubMessage("x", { correlationId: "" }), /^ValidationError: correlationId must be/);
  });

  it("leaves out properties whose value is undefined or null", () => {
    const message = toHubMessage("x", {
      properties: { kept: "yes", none: undefined, nothing: null } as unknown as Record<string, string>,
    });
    assert.deepEqual(properties(message), { kept: "yes" });
  });

  it("sends a bigint property as its digits and refuses a function or a symbol", () => {
    const message = toHubMessage("x", { properties: { big: 12345678901234567890n as unknown as number } });
    assert.deepEqual(properties(message), { big: "12345678901234567890" });
    for (const bad of [() => 1, Symbol("s")]) {
      assert.throws(
        () => toHubMessage("x", { properties: { bad: bad as unknown as string } }),
        (error: Error) =>
          error instanceof ValidationError &&
          error.message === 'telemetry property "bad" must be a string, number or boolean',
      );
    }
  });

  it("counts each property's text in the 256 KB, and none that is left out", () => {
    const limit = 256 * 1024;
    assert.equal(
      toHubMessage(Buffer.alloc(limit - 5), { properties: { n: 1234 } }).getBytes().length,
      limit - 5,
    );
    assert.throws(() => toHubMessage(Buffer.alloc(limit - 5), { properties: { n: 12345 } }), /262145 bytes/);
    const gone = { gone: undefined, nothing: null } as unknown as Record<string, string>;
    assert.doesNotThrow(() => toHubMessage(Buffer.alloc(limit), { properties: gone }));
  });

  it("names a property of the wrong type rather than the size it would make", () => {
    const huge = { text: "x".repeat(300 * 1024) } as unknown as string;
    assert.throws(
      () => toHubMessage("x", { properties: { huge } }),
      /"huge" must be a string, number or boolean/,
    );
  });

  it("keeps a property named __proto__ (as JSON from a flow can hold)", () => {
    const message = toHubMessage("x", {
      properties: JSON.parse('{"__proto__":"p","a":"b"}') as Record<string, string>,
    });
    assert.deepEqual(properties(message), { ["__proto__"]: "p", a: "b" });
  });
});
