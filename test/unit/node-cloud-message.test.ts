// How c2d in turns a message body into msg.payload: JSON by content type, text by default, bytes otherwise.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cloudMessageFields, payloadOf } from "../../src/nodes/shared/cloud-message.js";

describe("c2d in payload", () => {
  it("parses JSON content types, with parameters and +json suffixes", () => {
    assert.deepEqual(payloadOf(Buffer.from('{"valve":3}'), "application/json"), { valve: 3 });
    assert.deepEqual(payloadOf(Buffer.from("[1,2]"), "Application/JSON; charset=utf-8"), [1, 2]);
    assert.equal(payloadOf(Buffer.from('"x"'), "application/ld+json"), "x");
  });

  it("keeps text and bodies without a content type as strings, anything else as a Buffer", () => {
    assert.equal(payloadOf(Buffer.from('{"not":"parsed"}'), undefined), '{"not":"parsed"}');
    assert.equal(payloadOf(Buffer.from("grüß"), "text/plain; charset=utf-8"), "grüß");
    const bytes = payloadOf(Buffer.from([0, 255, 7]), "application/octet-stream");
    assert.ok(Buffer.isBuffer(bytes));
    assert.deepEqual([...bytes], [0, 255, 7]);
    assert.ok(Buffer.isBuffer(payloadOf(Buffer.from("{}"), "application/jsonx")));
  });

  it("a JSON content type with a body that is not JSON is an error; the msg keeps the text", () => {
    assert.throws(
      () => payloadOf(Buffer.from("{oops"), "application/json"),
      /says it is JSON, but its body is not/,
    );
    const { fields, error } = cloudMessageFields({
      body: Buffer.from("{oops"),
      contentType: "application/json",
      properties: { a: "1" },
      messageId: "m",
      lockToken: "t",
    });
    assert.match(error?.message ?? "", /not JSON|is not/);
    assert.equal(fields.payload, "{oops");
    assert.equal(fields.messageId, "m");
    assert.deepEqual(fields.properties, { a: "1" });
    assert.equal("lockToken" in fields, false);
  });
});
