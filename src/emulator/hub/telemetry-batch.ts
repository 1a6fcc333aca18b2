// Batched device-to-cloud messages, as the C SDK sends all its telemetry: one AMQP transfer with
// message-format 0x80013700 whose data sections each hold a complete encoded AMQP message (properties,
// application-properties, message-annotations, data). Unpacked strictly: a batch that does not decode into
// messages with a body is refused as a whole, never recorded empty (docs/hub-amqp-protocol.md §3.4).
import { message as rheaMessage, types as amqpTypes, type Message } from "rhea";

/** The message-format of a batch (Microsoft's vendor code 0x800137, format 0). */
export const BATCH_MESSAGE_FORMAT = 0x80013700;

/** Descriptor codes of the bare-message and annotation sections (AMQP 1.0 §3.2). */
const SECTION = {
  header: 0x70,
  deliveryAnnotations: 0x71,
  messageAnnotations: 0x72,
  properties: 0x73,
  applicationProperties: 0x74,
  data: 0x75,
  sequence: 0x76,
  value: 0x77,
  footer: 0x78,
} as const;
const KNOWN_SECTIONS: ReadonlySet<number> = new Set(Object.values(SECTION));
const BODY_SECTIONS: ReadonlySet<number> = new Set([SECTION.data, SECTION.sequence, SECTION.value]);

export type BatchResult = { ok: true; messages: Message[] } | { ok: false; reason: string };

interface Section {
  code: number;
  value: unknown;
}

/** rhea's reader, which its typings omit; it slices past the end without complaint, so ends are checked here. */
interface AmqpReader {
  read(): { descriptor?: { value?: unknown }; value?: unknown };
  remaining(): number;
}

function readSections(bytes: Buffer): Section[] | string {
  const sections: Section[] = [];
  const reader = new (amqpTypes as unknown as { Reader: new (buffer: Buffer) => AmqpReader }).Reader(bytes);
  try {
    while (reader.remaining() > 0) {
      const item = reader.read();
      if (reader.remaining() < 0) return "a section runs past the end of its bytes";
      const code = item.descriptor?.value;
      if (typeof code !== "number" || !KNOWN_SECTIONS.has(code)) return "an item is not a message section";
      sections.push({ code, value: item.value });
    }
  } catch {
    return "the bytes are not AMQP-encoded";
  }
  return sections;
}

/** The messages of a batch transfer's payload, or why the batch is refused. */
export function unpackBatch(payload: Buffer): BatchResult {
  const outer = readSections(payload);
  if (typeof outer === "string") return { ok: false, reason: `Malformed batch: ${outer}.` };
  if (outer.some((section) => section.code === SECTION.sequence || section.code === SECTION.value)) {
    return { ok: false, reason: "Malformed batch: its body must be data sections." };
  }
  const encodedMessages = outer.filter((section) => section.code === SECTION.data);
  if (encodedMessages.length === 0) return { ok: false, reason: "Malformed batch: it holds no messages." };
  const messages: Message[] = [];
  for (const [index, section] of encodedMessages.entries()) {
    const bytes = section.value;
    const inner = Buffer.isBuffer(bytes) && bytes.length > 0 ? readSections(bytes) : "it is empty";
    if (typeof inner === "string") {
      return { ok: false, reason: `Malformed batch: message ${index + 1}: ${inner}.` };
    }
    if (!inner.some((part) => BODY_SECTIONS.has(part.code))) {
      return { ok: false, reason: `Malformed batch: message ${index + 1} has no body.` };
    }
    try {
      messages.push(rheaMessage.decode(bytes as Buffer) as unknown as Message);
    } catch {
      return { ok: false, reason: `Malformed batch: message ${index + 1} does not decode.` };
    }
  }
  return { ok: true, messages };
}
