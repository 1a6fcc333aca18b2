// Reading and writing message bodies and ids the way the device SDK encodes them (docs/hub-amqp-protocol.md §3.2).
import { message as rheaMessage, uuid_to_string, type Message } from "rhea";

/** The bytes of a data section (or sections), an amqp-value string or binary; empty when absent. */
export function bodyBytes(body: unknown): Buffer {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === "string") return Buffer.from(body);
  if (typeof body === "object" && "typecode" in body && "content" in body) {
    const content = (body as { content: unknown }).content;
    if (Buffer.isBuffer(content)) return content;
    if (Array.isArray(content))
      return Buffer.concat(content.filter((part): part is Buffer => Buffer.isBuffer(part)));
  }
  return Buffer.from(JSON.stringify(body) ?? "");
}

/** A message id or correlation id as the service sees it: 16-byte uuids back in canonical text. */
export function messageIdText(id: unknown): string | undefined {
  if (id === undefined || id === null) return undefined;
  if (Buffer.isBuffer(id)) return id.length === 16 ? uuid_to_string(id) : id.toString("utf8");
  if (typeof id === "string") return id;
  if (typeof id === "number" || typeof id === "bigint") return String(id);
  return undefined;
}

/** Hub -> device bodies are always one data section (obligation 3). */
export function dataSection(bytes: Buffer): Message["body"] {
  return rheaMessage.data_section(bytes);
}

export function jsonDataSection(value: unknown): Message["body"] {
  return dataSection(Buffer.from(JSON.stringify(value)));
}
