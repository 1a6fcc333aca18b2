// The outbox log's record format on its own: the size the bounds count, what is kept of a message (text or
// base64, each optional field only when set), the three kinds of line, and a damaged, torn or foreign line
// refused as corrupt rather than read as something else.
import { crc32 } from "node:zlib";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Message } from "azure-iot-device";
import {
  decodeMessage,
  doneLine,
  headerLine,
  keptLine,
  messageBytes,
  messageOf,
  parseLine,
  storedOf,
} from "../../src/device/outbox-record.js";

/** A message with every field the log keeps set, each of a different UTF-8 size. */
function fullMessage(body: string | Buffer): Message {
  const m = new Message(body);
  m.messageId = "id-é"; // 5 bytes
  m.correlationId = "corr-ü"; // 7 bytes
  m.contentType = "application/json"; // 16
  m.contentEncoding = "utf-8"; // 5
  m.properties.add("sité", "plänt"); // 5 + 6
  m.properties.add("n", "42"); // 1 + 2
  return m;
}

/** The kept line's JSON and the record it parses into. */
function keptRecord(seq: number, bytes: number, message: Message): { line: string; json: string } {
  const line = keptLine(seq, bytes, message);
  const json = JSON.stringify(storedOf(message));
  return { line, json };
}

describe("outbox record: the size the bounds count", () => {
  it("adds the body, ids, content type and encoding, and each property's name and value, in UTF-8 bytes", () => {
    const body = "héllo"; // 6 bytes, 5 characters
    assert.equal(messageBytes(fullMessage(body)), 6 + 5 + 7 + 16 + 5 + (5 + 6) + (1 + 2));
    assert.equal(messageBytes(fullMessage(Buffer.from(body))), 6 + 5 + 7 + 16 + 5 + (5 + 6) + (1 + 2));
  });

  it("counts only the body for a message with nothing else set", () => {
    assert.equal(messageBytes(new Message(Buffer.from([0, 1, 2, 255]))), 4);
    assert.equal(messageBytes(new Message("ÿ")), 2);
  });

  it("counts a message whose ids were unset (not empty) as its body alone", () => {
    const m = new Message("abc");
    (m as { messageId?: string }).messageId = undefined;
    assert.equal(messageBytes(m), 3);
    (m as { correlationId?: string }).correlationId = undefined;
    assert.equal(messageBytes(m), 3);
  });

  it("counts each field on its own: the size grows by exactly that field", () => {
    const base = new Message("abc");
    const sizeOf = (change: (m: Message) => void): number => {
      const m = new Message("abc");
      change(m);
      return messageBytes(m) - messageBytes(base);
    };
    assert.equal(
      sizeOf((m) => (m.messageId = "ïd")),
      3,
    );
    assert.equal(
      sizeOf((m) => (m.correlationId = "çorr")),
      5,
    );
    assert.equal(
      sizeOf((m) => (m.contentType = "application/json")),
      16,
    );
    assert.equal(
      sizeOf((m) => (m.contentEncoding = "utf-8")),
      5,
    );
    assert.equal(
      sizeOf((m) => m.properties.add("ké", "vä")),
      6,
    );
  });
});

describe("outbox record: what is kept of a message", () => {
  it("keeps a UTF-8 body as text, with every field set", () => {
    assert.deepEqual(storedOf(fullMessage('{"t":"é"}')), {
      t: '{"t":"é"}',
      i: "id-é",
      c: "corr-ü",
      ct: "application/json",
      ce: "utf-8",
      p: [
        ["sité", "plänt"],
        ["n", "42"],
      ],
    });
  });

  it("keeps only the body and the id when nothing else is set", () => {
    const m = new Message(Buffer.from("plain"));
    m.messageId = "m1";
    assert.deepEqual(storedOf(m), { t: "plain", i: "m1" });
  });

  it("keeps a body that is not valid UTF-8 in base64, even one whose replacement has the same length", () => {
    const lone = Buffer.from([0xff]);
    const m = new Message(lone);
    m.messageId = "b1";
    assert.deepEqual(storedOf(m), { b: "/w==", i: "b1" });
    // A 4-byte sequence cut after 3 bytes decodes to one U+FFFD, itself 3 bytes long: only a byte comparison
    // tells it from text.
    const cut = Buffer.from([0xf0, 0x9f, 0x98]);
    const m2 = new Message(cut);
    m2.messageId = "b2";
    assert.deepEqual(storedOf(m2), { b: cut.toString("base64"), i: "b2" });
    assert.deepEqual(messageOf(storedOf(m2)).getData(), cut);
  });

  it("gives back body, ids, content type and encoding and properties, byte for byte", () => {
    for (const body of [Buffer.from('{"a":"ü"}'), Buffer.from([0, 1, 2, 255, 0xf0, 0x9f, 0x98])]) {
      const back = messageOf(storedOf(fullMessage(body)));
      assert.deepEqual(back.getData(), body);
      assert.equal(back.messageId, "id-é");
      assert.equal(back.correlationId, "corr-ü");
      assert.equal(back.contentType, "application/json");
      assert.equal(back.contentEncoding, "utf-8");
      assert.equal(back.properties.count(), 2);
      assert.deepEqual(back.properties.getItem(0), { key: "sité", value: "plänt" });
      assert.deepEqual(back.properties.getItem(1), { key: "n", value: "42" });
      assert.equal(messageBytes(back), messageBytes(fullMessage(body)));
    }
  });

  it("gives back a message with nothing else set as the SDK's defaults: no correlation id, no properties", () => {
    const back = messageOf({ t: "x", i: "m" });
    assert.equal(back.correlationId, "");
    assert.equal(back.contentType, undefined);
    assert.equal(back.contentEncoding, undefined);
    assert.equal(back.properties.count(), 0);
  });

  it("gives an empty body to a stored message that has neither text nor base64", () => {
    assert.deepEqual(messageOf({ i: "m" }).getData(), Buffer.alloc(0));
  });
});

describe("outbox record: lines", () => {
  it("writes the three kinds of line in their documented form", () => {
    assert.equal(headerLine(7), "OUTBOX 2 7\n");
    assert.equal(doneLine(12, 340), "d 12 340\n");
    const m = new Message("hi");
    m.messageId = "m1";
    const json = '{"t":"hi","i":"m1"}';
    assert.equal(keptLine(3, 21, m), `k 3 21 ${crc32(json).toString(16)} ${json}\n`);
  });

  it("reads back each line it writes", () => {
    assert.deepEqual(parseLine(headerLine(7).trimEnd()), { type: "header", version: 2, firstSeq: 7 });
    assert.deepEqual(parseLine(doneLine(12, 340).trimEnd()), { type: "done", seq: 12, bytes: 340 });
    // A body with spaces: only the first three spaces separate fields.
    const m = fullMessage("a b  c ");
    const { line, json } = keptRecord(42, messageBytes(m), m);
    assert.deepEqual(parseLine(line.trimEnd()), { type: "kept", seq: 42, bytes: messageBytes(m), json });
    const back = decodeMessage(json);
    assert.ok(back);
    assert.deepEqual(back.getData(), Buffer.from("a b  c "));
    assert.equal(back.messageId, "id-é");
  });

  it("takes the largest number it can hold exactly, and no longer one", () => {
    assert.deepEqual(parseLine("d 999999999999999 1"), { type: "done", seq: 999_999_999_999_999, bytes: 1 });
    assert.deepEqual(parseLine("d 1 999999999999999"), { type: "done", seq: 1, bytes: 999_999_999_999_999 });
    assert.deepEqual(parseLine("d 1000000000000000 1"), { type: "corrupt" });
    assert.deepEqual(parseLine("d 1 1000000000000000"), { type: "corrupt" });
  });

  it("refuses a kept record with a wrong CRC, a number that is not one, or fields missing", () => {
    const m = new Message("x");
    m.messageId = "m";
    const good = keptLine(5, 10, m).trimEnd();
    const json = '{"t":"x","i":"m"}';
    const crc = crc32(json).toString(16);
    assert.equal(parseLine(good).type, "kept");
    assert.deepEqual(parseLine(good.replace('"x"', '"y"')), { type: "corrupt" }, "damaged JSON");
    assert.deepEqual(parseLine(`k 5 10 ${crc}0 ${json}`), { type: "corrupt" }, "wrong CRC");
    assert.deepEqual(parseLine(`k x5 10 ${crc} ${json}`), { type: "corrupt" }, "seq not a number");
    assert.deepEqual(parseLine(`k 5x 10 ${crc} ${json}`), { type: "corrupt" }, "seq with text after it");
    assert.deepEqual(parseLine(`k 5 ten ${crc} ${json}`), { type: "corrupt" }, "bytes not a number");
    assert.deepEqual(parseLine(`k 5 1.5 ${crc} ${json}`), { type: "corrupt" }, "bytes not whole");
    assert.deepEqual(parseLine(`k 5  ${crc} ${json}`), { type: "corrupt" }, "bytes empty");
    assert.deepEqual(parseLine(`k 5 10`), { type: "corrupt" }, "torn before the CRC");
    assert.deepEqual(parseLine(`k 5 10 ${crc}`), { type: "corrupt" }, "torn before the JSON");
    assert.deepEqual(parseLine(`k 5`), { type: "corrupt" }, "torn after the seq");
    assert.deepEqual(parseLine(`k`), { type: "corrupt" });
    assert.deepEqual(parseLine(` k 5 10 ${crc} ${json}`), { type: "corrupt" }, "not at the start");
    assert.deepEqual(parseLine(`x 5 10 ${crc} ${json}`), { type: "corrupt" }, "unknown kind");
  });

  it("refuses a done record or header with a field too many or too few, or a number that is not one", () => {
    for (const line of [
      "d 1",
      "d 1 2 3",
      "d a 2",
      "d 1 b",
      "d -1 2",
      "d 1 ",
      "x 1 2",
      "dd 1 2",
      "OUTBOX 2",
      "OUTBOX 2 7 8",
      "OUTBOX two 7",
      "OUTBOX 2 seven",
      "OUTBOX 2 ",
      "outbox 2 7",
      "",
      "garbage",
    ]) {
      assert.deepEqual(parseLine(line), { type: "corrupt" }, JSON.stringify(line));
    }
  });

  it("reads a header of another version as such, for the log to decide", () => {
    assert.deepEqual(parseLine("OUTBOX 3 0"), { type: "header", version: 3, firstSeq: 0 });
  });
});

describe("outbox record: decoding a kept record's JSON", () => {
  it("refuses JSON that is not a stored message: no id, an id that is not text, no body, or not JSON", () => {
    for (const json of [
      '{"t":"x"}',
      '{"t":"x","i":5}',
      '{"i":"m"}',
      '{"i":"m","p":[["a","b"]]}',
      "null",
      "[]",
      "{",
      "",
    ]) {
      assert.equal(decodeMessage(json), undefined, json);
    }
  });

  it("decodes a message with text, or with base64 alone", () => {
    const text = decodeMessage('{"t":"hé","i":"m"}');
    assert.ok(text);
    assert.deepEqual(text.getData(), Buffer.from("hé"));
    const binary = decodeMessage('{"b":"AAH/","i":"m"}');
    assert.ok(binary);
    assert.deepEqual(binary.getData(), Buffer.from([0, 1, 255]));
    assert.equal(binary.messageId, "m");
  });
});
