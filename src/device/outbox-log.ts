// The outbox on disk: an append-only log of "kept" and "done" records, one JSON line each. A message is in
// the log before enqueue() returns (a write(2) that a process kill cannot undo); fsync runs in batches, at most
// `syncEveryMs` apart, so a power cut can lose that last stretch. On open the log is replayed (kept minus
// done, in order; a torn last line from a kill mid-write is ignored) and rewritten with only what is still
// pending once done records outweigh it. Why a log of our own: no native module (palette installs on any
// Node), one file, sequential writes; replay reads it once (docs/architecture.md "Telemetry").
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
  mkdirSync,
  existsSync,
} from "node:fs";
import { dirname } from "node:path";
import { Message } from "azure-iot-device";

/** What the log keeps of a telemetry message: enough to send it again, byte for byte. */
export interface StoredMessage {
  body: string;
  messageId: string;
  correlationId?: string;
  contentType?: string;
  contentEncoding?: string;
  properties: Array<[string, string]>;
}

export interface PendingRecord {
  seq: number;
  message: Message;
}

export function storedOf(message: Message): StoredMessage {
  const data = message.getData() as Buffer | string;
  const stored: StoredMessage = {
    body: (Buffer.isBuffer(data) ? data : Buffer.from(String(data))).toString("base64"),
    messageId: String(message.messageId),
    properties: [],
  };
  if (message.correlationId) stored.correlationId = String(message.correlationId);
  if (message.contentType) stored.contentType = message.contentType;
  if (message.contentEncoding) stored.contentEncoding = message.contentEncoding;
  for (let i = 0; i < message.properties.count(); i++) {
    const item = message.properties.getItem(i);
    stored.properties.push([item.key, String(item.value)]);
  }
  return stored;
}

export function messageOf(stored: StoredMessage): Message {
  const message = new Message(Buffer.from(stored.body, "base64"));
  message.messageId = stored.messageId;
  if (stored.correlationId) message.correlationId = stored.correlationId;
  if (stored.contentType) message.contentType = stored.contentType as Message["contentType"];
  if (stored.contentEncoding) message.contentEncoding = stored.contentEncoding as Message["contentEncoding"];
  for (const [key, value] of stored.properties) message.properties.add(key, value);
  return message;
}

export interface OutboxLogOptions {
  /** Longest time a written record waits for fsync. Default 200 ms. */
  syncEveryMs?: number;
}

export class OutboxLog {
  private fd: number;
  private nextSeq = 1;
  /** Pending records and their line length, for the rewrite. */
  private readonly pending = new Map<number, string>();
  private doneSinceRewrite = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  private readonly syncEveryMs: number;
  private closed = false;

  /** Opens (or creates) the log at `file`; `recovered` holds what was pending, oldest first. */
  constructor(
    readonly file: string,
    options: OutboxLogOptions = {},
  ) {
    this.syncEveryMs = options.syncEveryMs ?? 200;
    mkdirSync(dirname(file), { recursive: true });
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    this.replay(text);
    this.fd = openSync(file, "a");
    // Rewritten when it holds done records, or ends in a torn line the next record would be glued to.
    if (this.doneSinceRewrite > 0 || (text.length > 0 && !text.endsWith("\n"))) this.rewrite();
  }

  /** Messages kept and not yet done, oldest first, as they were at open. */
  recovered(): PendingRecord[] {
    return [...this.pending.entries()].map(([seq, line]) => ({
      seq,
      message: messageOf((JSON.parse(line) as { m: StoredMessage }).m),
    }));
  }

  get size(): number {
    return this.pending.size;
  }

  /** Writes a message; returns its sequence number. Survives a process kill once this returns. */
  keep(message: Message): number {
    const seq = this.nextSeq++;
    const line = JSON.stringify({ k: seq, m: storedOf(message) });
    this.write(`${line}\n`);
    this.pending.set(seq, line);
    return seq;
  }

  /** The message left the outbox for good (accepted, refused for what it is, or dropped). */
  done(seq: number): void {
    if (!this.pending.delete(seq)) return;
    this.write(`{"d":${seq}}\n`);
    this.doneSinceRewrite += 1;
    if (this.doneSinceRewrite > 10_000 && this.doneSinceRewrite > this.pending.size) this.rewrite();
  }

  /** Flushes to the disk and closes the file. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    fsyncSync(this.fd);
    closeSync(this.fd);
  }

  private write(text: string): void {
    if (this.closed) throw new Error("the outbox log is closed");
    writeSync(this.fd, text);
    this.syncTimer ??= setTimeout(() => {
      this.syncTimer = undefined;
      fsyncSync(this.fd);
    }, this.syncEveryMs);
    this.syncTimer.unref();
  }

  private replay(text: string): void {
    for (const line of text.split("\n")) {
      if (line === "") continue;
      let record: { k?: number; d?: number; m?: StoredMessage };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        continue; // a line torn by a kill in mid-write: it was never acknowledged as kept
      }
      if (typeof record.k === "number" && record.m) {
        this.pending.set(record.k, line);
        this.nextSeq = Math.max(this.nextSeq, record.k + 1);
      } else if (typeof record.d === "number") {
        this.pending.delete(record.d);
        this.doneSinceRewrite += 1;
      }
    }
  }

  /** Replaces the log by one with only the pending records (written aside, fsynced, renamed over). */
  private rewrite(): void {
    const aside = `${this.file}.rewrite`;
    const fd = openSync(aside, "w");
    const lines = [...this.pending.values()];
    for (let i = 0; i < lines.length; i += 1000) writeSync(fd, `${lines.slice(i, i + 1000).join("\n")}\n`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(aside, this.file);
    const old = this.fd;
    this.fd = openSync(this.file, "a");
    closeSync(old);
    this.doneSinceRewrite = 0;
  }
}
