// How one telemetry message is written into the outbox log and read back (format version 2,
// docs/architecture.md §3.1). One line per record, ASCII framing so a torn or damaged record is found by its
// line and its CRC without parsing the rest:
//   header  "OUTBOX 2 <first seq>"                   first line of every segment file
//   kept    "k <seq> <bytes> <crc32 hex> <json>"     a message accepted into the outbox
//   done    "d <seq> <bytes>"                        that message left the outbox (accepted, refused or dropped)
// <bytes> is the message's size as the outbox bounds count it (messageBytes), so a restart recounts the bytes
// waiting without decoding a single message.
import { isUtf8 } from "node:buffer";
import { crc32 } from "node:zlib";
import { Message } from "azure-iot-device";

export const LOG_FORMAT_VERSION = 2;

/** What the log keeps of a telemetry message: enough to send it again, byte for byte. */
export interface StoredMessage {
  /** The body as text, when it is valid UTF-8 (most telemetry is JSON): smaller on disk than base64. */
  t?: string;
  /** The body in base64, when it is not text. */
  b?: string;
  i: string;
  c?: string;
  ct?: string;
  ce?: string;
  p?: Array<[string, string]>;
}

/** The body as the SDK holds it: a string (our own messages) or a Buffer. */
function bodyOf(message: Message): string | Buffer {
  const data = message.getData() as Buffer | string;
  return Buffer.isBuffer(data) ? data : String(data);
}

/**
 * The size the outbox bounds count: body, messageId, correlationId, content type and encoding, property names
 * and values, in UTF-8 bytes. Close to what the hub counts against its 256 KB limit; independent of the store.
 */
export function messageBytes(message: Message): number {
  const body = bodyOf(message);
  let bytes =
    (Buffer.isBuffer(body) ? body.length : Buffer.byteLength(body)) +
    Buffer.byteLength(String(message.messageId ?? ""));
  if (message.correlationId) bytes += Buffer.byteLength(String(message.correlationId));
  if (message.contentType) bytes += message.contentType.length;
  if (message.contentEncoding) bytes += message.contentEncoding.length;
  for (let i = 0; i < message.properties.count(); i++) {
    const item = message.properties.getItem(i);
    bytes += Buffer.byteLength(item.key) + Buffer.byteLength(String(item.value));
  }
  return bytes;
}

export function storedOf(message: Message): StoredMessage {
  const body = bodyOf(message);
  // A string body is sent as its UTF-8 bytes, and Buffer.from(t) gives back exactly those; a Buffer body is
  // kept as text only when it is valid UTF-8 (then toString/Buffer.from round-trips it byte for byte).
  const stored: StoredMessage = !Buffer.isBuffer(body)
    ? { t: body, i: String(message.messageId) }
    : isUtf8(body)
      ? { t: body.toString("utf8"), i: String(message.messageId) }
      : { b: body.toString("base64"), i: String(message.messageId) };
  if (message.correlationId) stored.c = String(message.correlationId);
  if (message.contentType) stored.ct = message.contentType;
  if (message.contentEncoding) stored.ce = message.contentEncoding;
  if (message.properties.count() > 0) {
    stored.p = [];
    for (let i = 0; i < message.properties.count(); i++) {
      const item = message.properties.getItem(i);
      stored.p.push([item.key, String(item.value)]);
    }
  }
  return stored;
}

export function messageOf(stored: StoredMessage): Message {
  const message = new Message(
    stored.t !== undefined ? Buffer.from(stored.t) : Buffer.from(stored.b ?? "", "base64"),
  );
  message.messageId = stored.i;
  if (stored.c) message.correlationId = stored.c;
  if (stored.ct) message.contentType = stored.ct as Message["contentType"];
  if (stored.ce) message.contentEncoding = stored.ce as Message["contentEncoding"];
  for (const [key, value] of stored.p ?? []) message.properties.add(key, value);
  return message;
}

export function headerLine(firstSeq: number): string {
  return `OUTBOX ${LOG_FORMAT_VERSION} ${firstSeq}\n`;
}

export function keptLine(seq: number, bytes: number, message: Message): string {
  const json = JSON.stringify(storedOf(message));
  return `k ${seq} ${bytes} ${crc32(json).toString(16)} ${json}\n`;
}

export function doneLine(seq: number, bytes: number): string {
  return `d ${seq} ${bytes}\n`;
}

export type ParsedRecord =
  | { type: "header"; version: number; firstSeq: number }
  | { type: "kept"; seq: number; bytes: number; json: string }
  | { type: "done"; seq: number; bytes: number }
  | { type: "corrupt" };

const CORRUPT: ParsedRecord = { type: "corrupt" };

function wholeNumber(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

/** One line without its newline. A kept record whose CRC does not match its JSON is corrupt. */
export function parseLine(line: string): ParsedRecord {
  if (line.startsWith("k ")) {
    let at = 2;
    const fields: string[] = [];
    for (let n = 0; n < 3; n++) {
      const space = line.indexOf(" ", at);
      if (space < 0) return CORRUPT;
      fields.push(line.slice(at, space));
      at = space + 1;
    }
    const seq = wholeNumber(fields[0]);
    const bytes = wholeNumber(fields[1]);
    const json = line.slice(at);
    if (seq === undefined || bytes === undefined || crc32(json).toString(16) !== fields[2]) return CORRUPT;
    return { type: "kept", seq, bytes, json };
  }
  const parts = line.split(" ");
  if (parts[0] === "d" && parts.length === 3) {
    const seq = wholeNumber(parts[1]);
    const bytes = wholeNumber(parts[2]);
    return seq === undefined || bytes === undefined ? CORRUPT : { type: "done", seq, bytes };
  }
  if (parts[0] === "OUTBOX" && parts.length === 3) {
    const version = wholeNumber(parts[1]);
    const firstSeq = wholeNumber(parts[2]);
    return version === undefined || firstSeq === undefined ? CORRUPT : { type: "header", version, firstSeq };
  }
  return CORRUPT;
}

/** Decodes a kept record's JSON; undefined when it does not hold a message (written by a newer version). */
export function decodeMessage(json: string): Message | undefined {
  try {
    const stored = JSON.parse(json) as StoredMessage;
    if (typeof stored.i !== "string" || (stored.t === undefined && stored.b === undefined)) return undefined;
    return messageOf(stored);
  } catch {
    return undefined;
  }
}
