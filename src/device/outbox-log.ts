// The outbox on disk: an append-only log of "kept" and "done" records (outbox-record.ts) cut into segment files
// of about `segmentBytes` each. A message is in the log before append() returns (a write(2) that a process kill
// cannot undo); fsync runs in batches, at most `syncEveryMs` apart, so a power cut can lose that last stretch.
// Nothing but counters lives in memory: messages are paged in, oldest first, through a read cursor; a segment
// is deleted once every message in it is done, so the disk holds what waits plus at most a segment or two.
// Opening scans the segments once, line by line without decoding messages, to recount what waits
// (docs/architecture.md §3.1). Why a log of our own: no native module (palette installs on any Node), sequential
// writes only, and a restart costs one read of what is on disk.
import {
  close as closeLater,
  closeSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname } from "node:path";
import type { Message } from "azure-iot-device";
import { decodeMessage, doneLine, headerLine, keptLine, parseLine } from "./outbox-record.js";

export interface OutboxLogOptions {
  /** Longest time a written record waits for fsync. Default 200 ms. */
  syncEveryMs?: number;
  /** A new segment file is started once the current one holds this much. Default 16 MiB. */
  segmentBytes?: number;
}

/** A message paged in from the log. */
export interface LoggedMessage {
  seq: number;
  bytes: number;
  message: Message;
}

interface Segment {
  no: number;
  path: string;
  firstSeq: number;
  /** Highest sequence number kept in it (firstSeq - 1 while none). */
  lastSeq: number;
}

/** A sequential reader over the segments: whole lines, a chunk at a time. */
interface Cursor {
  segment: number;
  fd: number | undefined;
  position: number;
  /** Bytes read and not yet split into lines (a line cut by the chunk boundary). */
  rest: Buffer;
  lines: string[];
}

const CHUNK_BYTES = 256 * 1024;
const SEGMENT_NAME = /^\d{8}$/;

export class OutboxLog {
  private readonly segments: Segment[] = [];
  private writeFd: number;
  private writeSize = 0;
  private nextSeq = 1;
  /** Every sequence number up to here is done; done ones above it wait in `doneAbove` until the gap closes. */
  private doneThrough = 0;
  private readonly doneAbove = new Set<number>();
  private pendingCount = 0;
  private pendingBytes = 0;
  /** Pending messages not yet paged in (after the read cursor). */
  private unreadCount = 0;
  private readonly cursor: Cursor = {
    segment: 0,
    fd: undefined,
    position: 0,
    rest: Buffer.alloc(0),
    lines: [],
  };
  private corrupt = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  /** Done records not written yet: they go out with the next kept record, or at the end of this event-loop turn. */
  private doneText = "";
  private doneFlush: NodeJS.Immediate | undefined;
  /** The file an fsync is running on in the thread pool; closing it waits until that fsync ends. */
  private syncing: { fd: number; closeWhenDone: boolean } | undefined;
  private readonly syncEveryMs: number;
  private readonly segmentBytes: number;
  private closed = false;

  /** Opens (or creates) the log whose segments are `<file>.00000001`, `<file>.00000002`, … */
  constructor(
    readonly file: string,
    options: OutboxLogOptions = {},
  ) {
    this.syncEveryMs = options.syncEveryMs ?? 200;
    this.segmentBytes = options.segmentBytes ?? 16 * 1024 * 1024;
    mkdirSync(dirname(file), { recursive: true });
    this.recover();
    // Writing always starts a new segment: nothing is appended after a torn line of an earlier process.
    this.writeFd = this.startSegment((this.segments.at(-1)?.no ?? 0) + 1);
    this.compact();
  }

  /** Messages kept and not yet done (waiting on disk, paged in, or in flight). */
  get size(): number {
    return this.pendingCount;
  }

  /** Their bytes, as messageBytes() counts them. */
  get bytes(): number {
    return this.pendingBytes;
  }

  /** Pending messages not yet paged in. */
  get unread(): number {
    return this.unreadCount;
  }

  /** Records found damaged (a torn last line after a kill, or a CRC mismatch) and skipped when the log was opened. */
  get corruptRecords(): number {
    return this.corrupt;
  }

  /** Segment files on disk now. */
  get segmentCount(): number {
    return this.segments.length;
  }

  /** Writes a message; returns its sequence number. Survives a process kill once this returns. */
  append(message: Message, bytes: number): number {
    const seq = this.nextSeq;
    this.write(this.doneText + keptLine(seq, bytes, message));
    this.doneText = "";
    this.nextSeq += 1;
    (this.segments.at(-1) as Segment).lastSeq = seq;
    this.pendingCount += 1;
    this.pendingBytes += bytes;
    this.unreadCount += 1;
    try {
      this.rotateIfFull();
    } catch {
      // The message is kept (written above); a segment that cannot be started now is tried at the next write.
    }
    return seq;
  }

  /**
   * The message just appended is handed over in memory instead of being read back: only when it is the one
   * unread message, so the read cursor may jump over what lies before it (all of it done or paged in).
   */
  takeAppended(): boolean {
    if (this.unreadCount !== 1) return false;
    this.unreadCount = 0;
    this.closeCursor();
    Object.assign(this.cursor, {
      segment: this.segments.length - 1,
      position: this.writeSize,
      rest: Buffer.alloc(0),
      lines: [],
    });
    return true;
  }

  /** Pages in the oldest message not yet read; undefined when every pending message is in memory. */
  readNext(): LoggedMessage | undefined {
    while (this.unreadCount > 0) {
      const line = this.nextLine();
      if (line === undefined) {
        // Counted as unread but not found: the file was changed under us. Stop counting what is not there.
        this.unreadCount = 0;
        return undefined;
      }
      const record = parseLine(line);
      if (record.type !== "kept" || this.isDone(record.seq)) continue;
      this.unreadCount -= 1;
      const message = decodeMessage(record.json);
      if (!message) {
        this.done(record.seq, record.bytes);
        this.corrupt += 1;
        continue;
      }
      return { seq: record.seq, bytes: record.bytes, message };
    }
    return undefined;
  }

  /** The message left the outbox for good (accepted, refused for what it is, or dropped). */
  done(seq: number, bytes: number): void {
    if (this.isDone(seq) || seq >= this.nextSeq) return;
    this.markDone(seq);
    this.pendingCount -= 1;
    this.pendingBytes -= bytes;
    // One write(2) less per message: the record rides with the next kept one, or goes at the end of this turn.
    this.doneText += doneLine(seq, bytes);
    this.doneFlush ??= setImmediate(() => this.writeDone());
    try {
      this.compact();
    } catch {
      // Called as the hub accepts messages: never throws there; a segment not deleted now is deleted later.
    }
  }

  private writeDone(): void {
    this.doneFlush = undefined;
    if (this.closed || this.doneText === "") return;
    try {
      this.write(this.doneText);
      this.doneText = "";
      this.rotateIfFull();
    } catch {
      // A done record the disk refused (full) means the message may be sent again after a restart
      // (at-least-once), never that one is lost; it is tried again with the next record.
    }
  }

  /** Flushes to the disk and closes the files. */
  close(): void {
    if (this.closed) return;
    if (this.doneFlush) clearImmediate(this.doneFlush);
    this.writeDone();
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    fsyncSync(this.writeFd);
    this.closeWriteFile(this.writeFd);
    this.closeCursor();
  }

  private isDone(seq: number): boolean {
    return seq <= this.doneThrough || this.doneAbove.has(seq);
  }

  private markDone(seq: number): void {
    if (seq !== this.doneThrough + 1) {
      this.doneAbove.add(seq);
      return;
    }
    this.doneThrough = seq;
    while (this.doneAbove.delete(this.doneThrough + 1)) this.doneThrough += 1;
  }

  private write(text: string): void {
    if (this.closed) throw new Error("the outbox log is closed");
    // Written as a string: no Buffer per record to allocate and collect (a measurable share at 10,000 msg/s).
    const length = Buffer.byteLength(text);
    try {
      // At the known end, not the file offset: a write cut short moved the offset past the cut below.
      const written = writeSync(this.writeFd, text, this.writeSize);
      if (written !== length) throw new Error(`short write to the outbox log (${written} of ${length})`);
    } catch (error) {
      // A full disk: cut off what part of the line got written, so the next record starts on a line of its own.
      try {
        ftruncateSync(this.writeFd, this.writeSize);
      } catch {
        // the original error says more
      }
      throw error;
    }
    this.writeSize += length;
    this.syncTimer ??= setTimeout(() => this.syncInBackground(), this.syncEveryMs);
    this.syncTimer.unref();
  }

  /**
   * fsync in the thread pool: a synchronous one stalled the event loop for milliseconds every 200 ms (about 5 %
   * of a profile at full rate). What it covers is already written; it only bounds what a power cut loses.
   */
  private syncInBackground(): void {
    this.syncTimer = undefined;
    if (this.closed) return;
    if (this.syncing) {
      // The last one is still running: what was written since waits for the next turn.
      this.syncTimer = setTimeout(() => this.syncInBackground(), this.syncEveryMs);
      this.syncTimer.unref();
      return;
    }
    const syncing = { fd: this.writeFd, closeWhenDone: false };
    this.syncing = syncing;
    fsync(syncing.fd, () => {
      // A failing fsync (a disk going away) must not end the process; the next write reports the disk.
      this.syncing = undefined;
      if (syncing.closeWhenDone) closeLater(syncing.fd, () => undefined);
    });
  }

  /** Closes a segment file written to; if a background fsync still runs on it, once that ends. */
  private closeWriteFile(fd: number): void {
    if (this.syncing?.fd === fd) this.syncing.closeWhenDone = true;
    else closeSync(fd);
  }

  /** Starts the next segment once the one being written is full (after a record is fully accounted). */
  private rotateIfFull(): void {
    if (this.writeSize < this.segmentBytes) return;
    const full = this.writeFd;
    fsyncSync(full);
    // The new segment first: if it cannot be made, writing goes on in the full one and rotation is tried again.
    this.writeFd = this.startSegment((this.segments.at(-1) as Segment).no + 1);
    this.closeWriteFile(full);
    this.compact();
  }

  private startSegment(no: number): number {
    const path = `${this.file}.${String(no).padStart(8, "0")}`;
    const fd = openSync(path, "w");
    const header = Buffer.from(headerLine(this.nextSeq));
    writeSync(fd, header);
    fsyncSync(fd);
    syncDirectory(dirname(this.file));
    this.segments.push({ no, path, firstSeq: this.nextSeq, lastSeq: this.nextSeq - 1 });
    this.writeSize = header.length;
    return fd;
  }

  /** Deletes the oldest segments once every message in them is done (never the one being written). */
  private compact(): void {
    while (this.segments.length > 1 && this.segments[0].lastSeq <= this.doneThrough) {
      const gone = this.segments[0];
      // Closed before it is deleted (Windows cannot delete an open file).
      if (this.cursor.segment === 0) this.closeCursor();
      unlinkSync(gone.path);
      this.segments.shift();
      if (this.cursor.segment === 0) {
        // Nothing unread was left in it: read on from the start of the next one.
        Object.assign(this.cursor, { position: 0, rest: Buffer.alloc(0), lines: [] });
      } else {
        this.cursor.segment -= 1;
      }
    }
  }

  private closeCursor(): void {
    if (this.cursor.fd !== undefined) closeSync(this.cursor.fd);
    this.cursor.fd = undefined;
  }

  /** The next whole line after the cursor, across segment files; undefined at the end of what is written. */
  private nextLine(): string | undefined {
    const cursor = this.cursor;
    for (;;) {
      const line = cursor.lines.pop();
      if (line !== undefined) return line;
      const segment = this.segments[cursor.segment];
      if (!segment) return undefined;
      cursor.fd ??= openSync(segment.path, "r");
      const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
      const read = readSync(cursor.fd, chunk, 0, CHUNK_BYTES, cursor.position);
      if (read === 0) {
        if (cursor.segment === this.segments.length - 1) return undefined;
        // The end of an older segment: a torn last line there is skipped (counted when the log was opened).
        this.closeCursor();
        Object.assign(cursor, { segment: cursor.segment + 1, position: 0, rest: Buffer.alloc(0) });
        continue;
      }
      cursor.position += read;
      const data =
        cursor.rest.length > 0
          ? Buffer.concat([cursor.rest, chunk.subarray(0, read)])
          : chunk.subarray(0, read);
      const end = data.lastIndexOf(10);
      if (end < 0) {
        cursor.rest = Buffer.from(data);
        continue;
      }
      cursor.rest = Buffer.from(data.subarray(end + 1));
      // Kept reversed so that pop() takes them oldest first.
      cursor.lines = data.toString("utf8", 0, end).split("\n").reverse();
    }
  }

  /** Reads every segment once, counting what waits; messages are not decoded. */
  private recover(): void {
    const prefix = `${basename(this.file)}.`;
    const numbers = readdirSync(dirname(this.file))
      .filter((name) => name.startsWith(prefix) && SEGMENT_NAME.test(name.slice(prefix.length)))
      .map((name) => Number(name.slice(prefix.length)))
      .sort((a, b) => a - b);
    let expected: number | undefined;
    /** Bytes of each pending seq are not remembered; a done record carries them, so kept minus done adds up. */
    let highest = 0;
    for (const no of numbers) {
      const path = `${this.file}.${String(no).padStart(8, "0")}`;
      const segment: Segment = { no, path, firstSeq: expected ?? 1, lastSeq: (expected ?? 1) - 1 };
      let first = true;
      forEachLine(path, (line, complete) => {
        const record = complete ? parseLine(line) : { type: "corrupt" as const };
        if (first) {
          first = false;
          if (record.type === "header") {
            if (expected === undefined) {
              expected = record.firstSeq;
              this.doneThrough = record.firstSeq - 1;
            }
            segment.firstSeq = record.firstSeq;
            segment.lastSeq = record.firstSeq - 1;
            return;
          }
        }
        if (record.type === "kept") {
          if (expected === undefined) {
            // No header to say where this log starts: it starts here.
            expected = record.seq;
            this.doneThrough = record.seq - 1;
          }
          if (record.seq < expected || this.isDone(record.seq)) return;
          // Sequence numbers are consecutive: any skipped were damaged records, lost.
          for (let lost = expected; lost < record.seq; lost++) if (!this.isDone(lost)) this.markDone(lost);
          this.pendingCount += 1;
          this.pendingBytes += record.bytes;
          segment.lastSeq = record.seq;
          expected = record.seq + 1;
          highest = Math.max(highest, record.seq);
        } else if (record.type === "done") {
          highest = Math.max(highest, record.seq);
          if (this.isDone(record.seq)) return;
          if (expected !== undefined && record.seq < expected) {
            this.pendingCount -= 1;
            this.pendingBytes -= record.bytes;
          }
          this.markDone(record.seq);
        } else if (record.type === "corrupt") {
          this.corrupt += 1;
        }
      });
      this.segments.push(segment);
    }
    this.nextSeq = Math.max(expected ?? 1, highest + 1, this.doneThrough + 1);
    // Damaged records at the very end: their numbers are not given out again.
    for (let lost = expected ?? this.nextSeq; lost < this.nextSeq; lost++)
      if (!this.isDone(lost)) this.markDone(lost);
    this.unreadCount = this.pendingCount;
  }
}

/** Calls `each` for every line of `path`, read in chunks; `complete` is false for a last line without newline. */
function forEachLine(path: string, each: (line: string, complete: boolean) => void): void {
  const fd = openSync(path, "r");
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let rest = Buffer.alloc(0);
    let position = 0;
    for (;;) {
      const read = readSync(fd, chunk, 0, CHUNK_BYTES, position);
      if (read === 0) break;
      position += read;
      const data = rest.length > 0 ? Buffer.concat([rest, chunk.subarray(0, read)]) : chunk.subarray(0, read);
      let start = 0;
      for (let end = data.indexOf(10, start); end >= 0; end = data.indexOf(10, start)) {
        each(data.toString("utf8", start, end), true);
        start = end + 1;
      }
      rest = Buffer.from(data.subarray(start));
    }
    if (rest.length > 0) each(rest.toString("utf8"), false);
  } finally {
    closeSync(fd);
  }
}

/** A new segment file is only durable once its directory entry is: fsync the folder where the OS allows it. */
function syncDirectory(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    fsyncSync(fd);
  } catch {
    // Windows cannot open a folder for fsync; NTFS journals the entry itself.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
