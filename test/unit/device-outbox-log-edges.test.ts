// The outbox log at its edges: its counters through append, read, done and reopen; done() of a number it never
// gave out or already took; close() twice; a write the disk cuts short; the background fsync and the files it
// leaves open; which files are its segments and in which order; recovery of logs that were damaged, cut, or
// written by a newer version.
import { execFileSync } from "node:child_process";
import fs, {
  existsSync,
  fstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { OutboxLog } from "../../src/device/outbox-log.js";
import { doneLine, headerLine, keptLine } from "../../src/device/outbox-record.js";
import { ids, plainMessage as message, readAll, withDir } from "../support/outbox-log-fixtures.js";

const LOG = "outbox.log";

function segmentName(no: number): string {
  return `${LOG}.${String(no).padStart(8, "0")}`;
}

function segmentNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => /^outbox\.log\.\d{8}$/.test(name))
    .sort();
}

/** Writes segment files by hand, as a damaged or older log would have left them. */
function writeSegments(dir: string, segments: Record<number, string[]>): string {
  for (const [no, lines] of Object.entries(segments))
    writeFileSync(join(dir, segmentName(Number(no))), lines.join(""));
  return join(dir, LOG);
}

function kept(seq: number, id: string, bytes = 5): string {
  return keptLine(seq, bytes, message(id));
}

/** A kept record whose CRC no longer matches its JSON. */
function damaged(seq: number, id: string, bytes = 5): string {
  return kept(seq, id, bytes).replace(`"i":"${id}"`, `"i":"${id}X"`);
}

const PROC_FDS = "/proc/self/fd";
const canListOpenFiles = existsSync(PROC_FDS);

/** The files and folders under `dir` this process holds open, by path (Linux). */
function openUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of readdirSync(PROC_FDS)) {
    try {
      const target = readlinkSync(join(PROC_FDS, fd));
      if (target === dir || target.startsWith(`${dir}/`)) open.push(target);
    } catch {
      // closed since the listing
    }
  }
  return open.sort();
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 5000) assert.fail(`still waiting for ${what}`);
    await sleep(5);
  }
}

/** Whether `fd` is a file under one of `dirs` (every fd counts where /proc does not say). */
function isUnder(fd: number, dirs: string[]): boolean {
  if (!canListOpenFiles) return true;
  try {
    const target = readlinkSync(join(PROC_FDS, String(fd)));
    return dirs.some((dir) => target.startsWith(`${dir}/`));
  } catch {
    return false;
  }
}

/** Holds every background fsync of a file under `dirs` until the test lets it run (the real one then runs). */
function holdBackgroundFsync(dirs: string[]): { held: Array<() => void>; restore: () => void } {
  const realFsync = fs.fsync;
  const held: Array<() => void> = [];
  fs.fsync = ((fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
    if (isUnder(fd, dirs)) held.push(() => realFsync(fd, callback));
    else realFsync(fd, callback);
  }) as typeof fs.fsync;
  return {
    held,
    restore: () => {
      fs.fsync = realFsync;
      for (const run of held.splice(0)) run();
    },
  };
}

describe("outbox log edges", () => {
  it(
    "counts size, bytes and unread through append, readNext, done and reopen",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file);
      const a = log.append(message("a"), 5);
      const b = log.append(message("b"), 7);
      const c = log.append(message("c"), 11);
      assert.deepEqual([log.size, log.bytes, log.unread], [3, 23, 3]);
      assert.equal(log.readNext()?.seq, a);
      assert.deepEqual([log.size, log.bytes, log.unread], [3, 23, 2]);
      log.done(a, 5);
      assert.deepEqual([log.size, log.bytes, log.unread], [2, 18, 2]);
      // Done before it was read (dropped): it leaves the counts now and is skipped when the cursor gets there.
      log.done(c, 11);
      assert.deepEqual([log.size, log.bytes], [1, 7]);
      assert.equal(log.readNext()?.seq, b);
      assert.equal(log.readNext(), undefined);
      assert.equal(log.unread, 0);
      // The cursor waits at the end of the segment being written: what is appended next is read next.
      log.append(message("d"), 3);
      assert.equal(log.unread, 1);
      assert.equal(log.readNext()?.message.messageId, "d");
      assert.deepEqual([log.size, log.bytes, log.unread], [2, 10, 0]);
      log.close();
      const reopened = new OutboxLog(file);
      assert.deepEqual([reopened.size, reopened.bytes, reopened.unread], [2, 10, 2]);
      assert.deepEqual(ids(reopened), ["b", "d"]);
      reopened.close();
    }),
  );

  it(
    "ignores done() for a number not given out yet and for one already done",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file);
      const a = log.append(message("a"), 5);
      log.done(a + 1, 9); // the very next number, not given out yet
      log.done(a + 5, 9);
      assert.deepEqual([log.size, log.bytes], [1, 5]);
      const b = log.append(message("b"), 7);
      assert.equal(b, a + 1);
      log.done(a, 5);
      log.done(a, 5);
      assert.deepEqual([log.size, log.bytes], [1, 7]);
      log.close();
      const reopened = new OutboxLog(file);
      assert.deepEqual([reopened.size, reopened.bytes], [1, 7]);
      assert.deepEqual(ids(reopened), ["b"]);
      reopened.close();
    }),
  );

  it(
    "writes a kept record after done records written at the end of a turn on a line of its own",
    withDir(async (dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file, { syncEveryMs: 60_000 });
      const a = log.append(message("a"), 5);
      log.append(message("b"), 5);
      log.done(a, 5);
      await nextTurn();
      log.append(message("c"), 5);
      log.close();
      const reopened = new OutboxLog(file);
      assert.equal(reopened.corruptRecords, 0);
      assert.deepEqual(ids(reopened), ["b", "c"]);
      reopened.close();
    }),
  );

  it(
    "close() twice is harmless; append after close is refused by name; done after close writes nothing",
    withDir(async (dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file);
      const a = log.append(message("a"), 5);
      log.close();
      log.close();
      assert.throws(() => log.append(message("b"), 5), { message: "the outbox log is closed" });
      log.done(a, 5);
      await nextTurn();
      const reopened = new OutboxLog(file);
      assert.deepEqual(ids(reopened), ["a"]);
      reopened.close();
    }),
  );

  it(
    "starts a new segment once one holds exactly segmentBytes, and deletes it as soon as its messages are done, in any order",
    withDir((dir) => {
      const file = join(dir, LOG);
      const messages = ["a", "b", "c"].map((id) => message(id));
      const segmentBytes =
        Buffer.byteLength(headerLine(1)) +
        messages.reduce((sum, m, i) => sum + Buffer.byteLength(keptLine(i + 1, 5, m)), 0);
      const log = new OutboxLog(file, { segmentBytes });
      const seqs = messages.map((m) => log.append(m, 5));
      assert.equal(log.segmentCount, 2, "full at exactly segmentBytes");
      log.append(message("d"), 5);
      log.done(seqs[2], 5);
      log.done(seqs[1], 5);
      assert.equal(log.segmentCount, 2);
      log.done(seqs[0], 5);
      assert.equal(log.segmentCount, 1, "deleted by the done() that completed it");
      assert.equal(segmentNames(dir).length, 1);
      // The out-of-order ones are done for good: taken once, not twice.
      log.done(seqs[1], 5);
      assert.deepEqual([log.size, log.bytes], [1, 5]);
      log.close();
      const reopened = new OutboxLog(file, { segmentBytes });
      assert.deepEqual(ids(reopened), ["d"]);
      reopened.close();
    }),
  );

  it(
    "deletes a segment that holds only done records once it is full",
    withDir(async (dir) => {
      const file = join(dir, LOG);
      // Every kept record fills a segment; the three done records fill the next one.
      const log = new OutboxLog(file, { segmentBytes: 40 });
      const bytes = 1_000_000_000;
      const seqs = ["a", "b", "c"].map((id) => log.append(message(id), bytes));
      for (const seq of seqs) log.done(seq, bytes);
      await nextTurn();
      assert.equal(log.segmentCount, 1);
      assert.equal(segmentNames(dir).length, 1);
      log.close();
    }),
  );

  it(
    "reads on from the next segment when the one the cursor is in is deleted",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file, { segmentBytes: 1 });
      const seqs = ["a", "b", "c"].map((id) => log.append(message(id), 5));
      assert.equal(log.readNext()?.seq, seqs[0]);
      log.done(seqs[0], 5);
      assert.equal(log.segmentCount, 3);
      assert.deepEqual(ids(log), ["b", "c"]);
      log.close();
    }),
  );

  it(
    "hands over the message just appended only when it is the one unread, and reads on after it",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file);
      log.append(message("a"), 5);
      assert.equal(log.takeAppended(), true);
      assert.equal(log.unread, 0);
      assert.equal(log.readNext(), undefined);
      log.append(message("b"), 5);
      log.append(message("c"), 5);
      assert.equal(log.takeAppended(), false, "two unread: they are read back in order");
      assert.equal(log.unread, 2);
      assert.deepEqual(ids(log), ["b", "c"]);
      log.append(message("d"), 5);
      assert.equal(log.takeAppended(), true);
      log.append(message("e"), 5);
      assert.deepEqual(ids(log), ["e"]);
      assert.equal(log.size, 5);
      log.close();
    }),
  );

  it(
    "a write the disk cuts short fails the append and is cut back to the last whole line",
    { skip: process.platform !== "linux" && "needs prlimit (RLIMIT_FSIZE) to make the disk refuse" },
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file, { syncEveryMs: 60_000 });
      log.append(message("a"), 5);
      const [segment] = segmentNames(dir);
      const size = statSync(join(dir, segment)).size;
      const limitFileSize = (limit: string) =>
        execFileSync("prlimit", [`--pid=${process.pid}`, `--fsize=${limit}:`]);
      limitFileSize(String(size + 100));
      try {
        // Twice: the second write starts where the first was cut back to, and is cut short the same way.
        for (let i = 0; i < 2; i++) {
          assert.throws(
            () => log.append(message("big", "x".repeat(1000)), 1000),
            /^Error: short write to the outbox log \(100 of \d+\)$/,
          );
        }
      } finally {
        limitFileSize("unlimited");
      }
      assert.equal(statSync(join(dir, segment)).size, size);
      assert.deepEqual([log.size, log.bytes, log.unread], [1, 5, 1]);
      assert.equal(log.append(message("b"), 5), 2, "the refused message used up no number");
      log.close();
      const reopened = new OutboxLog(file);
      assert.equal(reopened.corruptRecords, 0);
      assert.deepEqual(ids(reopened), ["a", "b"]);
      reopened.close();
    }),
  );

  it("fsyncs in the background syncEveryMs after a write (200 ms by default), one fsync at a time", async () => {
    const dirs = [1, 2, 3].map(() => realpathSync(mkdtempSync(join(tmpdir(), "provisio-outbox-edges-"))));
    const fsyncs = holdBackgroundFsync(dirs);
    try {
      const byDefault = new OutboxLog(join(dirs[0], LOG));
      const appendedAt = performance.now();
      byDefault.append(message("a"), 5);
      // Timed from both ends, not by a sleep: on a loaded machine a sleep can overshoot the 200 ms.
      await waitFor(() => fsyncs.held.length === 1, "the default fsync");
      const tookMs = performance.now() - appendedAt;
      assert.ok(tookMs >= 195, `not before 200 ms (came after ${tookMs.toFixed(0)} ms)`);
      fsyncs.held.shift()?.();
      byDefault.close();

      const slow = new OutboxLog(join(dirs[1], LOG), { syncEveryMs: 60_000 });
      slow.append(message("a"), 5);
      await sleep(400);
      assert.equal(fsyncs.held.length, 0, "syncEveryMs is taken as given");
      slow.close();

      const log = new OutboxLog(join(dirs[2], LOG), { syncEveryMs: 10 });
      log.append(message("a"), 5);
      await waitFor(() => fsyncs.held.length === 1, "the first fsync");
      log.append(message("b"), 5);
      await sleep(100);
      assert.equal(fsyncs.held.length, 1, "no second fsync while one runs");
      fsyncs.held.shift()?.();
      await waitFor(() => fsyncs.held.length === 1, "the fsync of what was written meanwhile");
      fsyncs.held.shift()?.();
      log.close();
    } finally {
      fsyncs.restore();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    "fsyncs the folder of a new segment, so that its name survives a power cut",
    withDir((dir) => {
      const realFsyncSync = fs.fsyncSync;
      let folders = 0;
      fs.fsyncSync = (fd: number) => {
        if (fstatSync(fd).isDirectory()) folders += 1;
        realFsyncSync(fd);
      };
      try {
        new OutboxLog(join(dir, LOG)).close();
      } finally {
        fs.fsyncSync = realFsyncSync;
      }
      assert.equal(folders, 1);
    }),
  );

  it(
    "leaves no file open after close(), also for a segment rotated away from while its fsync ran",
    { skip: !canListOpenFiles && "needs /proc/self/fd" },
    withDir(async (dir) => {
      const file = join(dir, LOG);
      const first = new OutboxLog(file, { segmentBytes: 1 });
      for (const id of ["a", "b", "c"]) first.append(message(id), 5);
      first.close();
      const fsyncs = holdBackgroundFsync([dir]);
      try {
        const log = new OutboxLog(file, { segmentBytes: 1, syncEveryMs: 1 });
        // Recovery closed every segment it read, and the folder it synced: only the one being written is open.
        assert.deepEqual(openUnder(dir), [join(dir, segmentNames(dir).at(-1) as string)]);
        log.append(message("d"), 5);
        await waitFor(() => fsyncs.held.length === 1, "a background fsync");
        log.append(message("e"), 5); // rotates away from the file that fsync runs on
        assert.equal(log.readNext()?.message.messageId, "a"); // the read cursor holds a file open too
        fsyncs.held.shift()?.();
        log.close();
        await waitFor(() => openUnder(dir).length === 0, `no open file, but ${openUnder(dir).join(", ")}`);
        // A fsync that ended before the rotation does not hold the file open either.
        const again = new OutboxLog(file, { segmentBytes: 1, syncEveryMs: 1 });
        again.append(message("f"), 5);
        await waitFor(() => fsyncs.held.length === 1, "a background fsync");
        fsyncs.held.shift()?.();
        await sleep(20);
        again.append(message("g"), 5);
        again.close();
        await waitFor(() => openUnder(dir).length === 0, `no open file, but ${openUnder(dir).join(", ")}`);
      } finally {
        fsyncs.restore();
      }
    }),
  );

  it(
    "takes as segments only files named <file>.<8 digits>, and leaves other files alone",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file);
      const a = log.append(message("a"), 5);
      log.close();
      // Each holds a message that must not come back.
      const stray = [
        "outbox.log.123456789",
        "outbox.log.x00000009",
        "outbox.log.0000001x",
        "outbox.log.bak",
        "other.log.00000003",
        "notes.txt",
      ];
      for (const name of stray) writeFileSync(join(dir, name), headerLine(7) + kept(7, "stray"));
      const reopened = new OutboxLog(file);
      assert.deepEqual([reopened.size, reopened.corruptRecords], [1, 0]);
      assert.deepEqual(segmentNames(dir), [segmentName(1), segmentName(2)]);
      reopened.done(a, 5);
      assert.deepEqual(ids(reopened), []);
      reopened.close();
      assert.deepEqual(readdirSync(dir).sort(), [...stray, segmentName(2)].sort());
    }),
  );

  it(
    "reads segments in the order of their numbers, whatever order the folder lists them in",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file, { segmentBytes: 1 });
      const all = Array.from({ length: 6 }, (_, i) => `m${i}`);
      for (const id of all) log.append(message(id), 5);
      log.close();
      // Written again in another order than their numbers.
      const names = segmentNames(dir);
      const contents = names.map((name) => readFileSync(join(dir, name)));
      for (const name of names) unlinkSync(join(dir, name));
      for (const i of [3, 0, 5, 1, 6, 2, 4]) writeFileSync(join(dir, names[i]), contents[i]);
      const reopened = new OutboxLog(file);
      assert.equal(reopened.size, 6);
      assert.deepEqual(ids(reopened), all);
      reopened.close();
    }),
  );

  it(
    "pages in and recovers records that cross a 256 KiB read",
    withDir((dir) => {
      const file = join(dir, LOG);
      const log = new OutboxLog(file);
      const bodies = ["a", "b", "c", "d"].map((c) => c.repeat(100 * 1024));
      bodies.push("e".repeat(600 * 1024)); // longer than a read: no line end in a whole chunk
      bodies.forEach((body, i) => log.append(message(`m${i}`, body), body.length));
      const back = readAll(log);
      assert.deepEqual(
        back.map((r) => (r.message.getData() as Buffer).toString()),
        bodies,
      );
      log.close();
      const reopened = new OutboxLog(file);
      assert.deepEqual([reopened.size, reopened.corruptRecords], [5, 0]);
      assert.deepEqual(
        readAll(reopened).map((r) => (r.message.getData() as Buffer).toString()),
        bodies,
      );
      reopened.close();
    }),
  );

  describe("recovery", () => {
    it(
      "a segment without its header starts the log at its first kept record",
      withDir((dir) => {
        const file = writeSegments(dir, { 1: [kept(5, "five"), kept(6, "six")] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.bytes, log.corruptRecords], [2, 10, 0]);
        log.done(3, 5); // before the log's start: done already
        assert.equal(log.size, 2);
        assert.deepEqual(ids(log), ["five", "six"]);
        assert.equal(log.append(message("seven"), 5), 7);
        log.close();
      }),
    );

    it(
      "a log whose only segment holds a header goes on from the header's number",
      withDir((dir) => {
        const file = writeSegments(dir, { 4: [headerLine(10)] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.corruptRecords], [0, 0]);
        assert.equal(log.append(message("ten"), 5), 10);
        log.done(9, 5);
        assert.equal(log.size, 1);
        log.close();
      }),
    );

    it(
      "done records in a later segment than their kept ones, with or without its header",
      withDir((dir) => {
        for (const header of [[headerLine(3)], []]) {
          for (const name of readdirSync(dir)) unlinkSync(join(dir, name));
          const file = writeSegments(dir, {
            1: [headerLine(1), kept(1, "one"), kept(2, "two")],
            2: [...header, doneLine(1, 5)],
          });
          const log = new OutboxLog(file);
          assert.deepEqual([log.size, log.bytes], [1, 5]);
          assert.equal(log.segmentCount, 3);
          log.done(2, 5);
          assert.equal(log.segmentCount, 1, "both older segments hold nothing pending");
          log.close();
        }
      }),
    );

    it(
      "done records before any kept record, in a segment without header",
      withDir((dir) => {
        const file = writeSegments(dir, { 1: [doneLine(1, 5), kept(2, "two")] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.bytes], [1, 5]);
        assert.deepEqual(ids(log), ["two"]);
        log.close();
      }),
    );

    it(
      "a damaged first segment with no record in it is deleted",
      withDir((dir) => {
        const file = writeSegments(dir, { 1: ["garbage\n"], 2: [headerLine(1), kept(1, "one")] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.corruptRecords], [1, 1]);
        assert.equal(log.segmentCount, 2);
        assert.deepEqual(segmentNames(dir), [segmentName(2), segmentName(3)]);
        assert.deepEqual(ids(log), ["one"]);
        log.close();
      }),
    );

    it(
      "a header line inside a segment is skipped, not counted as damage",
      withDir((dir) => {
        const file = writeSegments(dir, {
          1: [headerLine(1), kept(1, "one"), kept(2, "two"), headerLine(1)],
        });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.corruptRecords], [2, 0]);
        assert.deepEqual(ids(log), ["one", "two"]);
        log.close();
      }),
    );

    it(
      "an empty first line is one damaged record; the records after it are kept",
      withDir((dir) => {
        const file = writeSegments(dir, { 1: ["\n", headerLine(1), kept(1, "one"), kept(2, "two")] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.corruptRecords], [2, 1]);
        assert.deepEqual(ids(log), ["one", "two"]);
        log.close();
      }),
    );

    it(
      "a last record without its line end is torn, even when the rest of it is whole",
      withDir((dir) => {
        const file = writeSegments(dir, { 1: [headerLine(1), kept(1, "one"), kept(2, "two").trimEnd()] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.corruptRecords], [1, 1]);
        assert.deepEqual(ids(log), ["one"]);
        log.close();
      }),
    );

    it(
      "a kept record repeated later in the log is counted and read once",
      withDir((dir) => {
        const file = writeSegments(dir, {
          1: [headerLine(1), kept(1, "one"), kept(2, "two"), kept(1, "one")],
        });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.bytes, log.unread], [2, 10, 2]);
        assert.deepEqual(ids(log), ["one", "two"]);
        assert.equal(log.readNext(), undefined);
        log.close();
      }),
    );

    it(
      "a damaged record in the middle: its number is lost, never pending and never given out",
      withDir((dir) => {
        const file = writeSegments(dir, {
          1: [headerLine(1), kept(1, "one"), damaged(2, "two"), kept(3, "three")],
        });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.corruptRecords], [2, 1]);
        log.done(2, 5);
        assert.deepEqual([log.size, log.bytes], [2, 10]);
        assert.equal(log.append(message("four"), 5), 4);
        log.close();
      }),
    );

    it(
      "damaged records at the end with a done record for one of them: numbers past it, nothing pending",
      withDir((dir) => {
        const file = writeSegments(dir, {
          1: [headerLine(1), kept(1, "one"), damaged(2, "two"), damaged(3, "three"), doneLine(3, 5)],
        });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.bytes, log.corruptRecords], [1, 5, 2]);
        log.done(2, 5);
        log.done(3, 5);
        assert.deepEqual([log.size, log.bytes], [1, 5]);
        assert.equal(log.append(message("four"), 5), 4);
        log.close();
      }),
    );

    it(
      "a damaged record whose done record follows: its number is not given out again",
      withDir((dir) => {
        const file = writeSegments(dir, {
          1: [headerLine(1), kept(1, "one"), damaged(2, "two"), doneLine(2, 5)],
        });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.bytes, log.corruptRecords], [1, 5, 1]);
        assert.equal(log.append(message("three"), 5), 3);
        log.close();
        assert.deepEqual(ids(new OutboxLog(file)), ["one", "three"]);
      }),
    );

    it(
      "a kept record that holds no message (a newer version's) is counted until read, then done and counted as damaged",
      withDir((dir) => {
        const json = '{"v":3,"payload":"x"}';
        const newer = `k 2 9 ${crc32(json).toString(16)} ${json}\n`;
        const file = writeSegments(dir, { 1: [headerLine(1), kept(1, "one"), newer, kept(3, "three")] });
        const log = new OutboxLog(file);
        assert.deepEqual([log.size, log.bytes, log.corruptRecords], [3, 19, 0]);
        assert.deepEqual(ids(log), ["one", "three"]);
        assert.deepEqual([log.size, log.bytes, log.corruptRecords], [2, 10, 1]);
        log.close();
        const reopened = new OutboxLog(file);
        assert.deepEqual([reopened.size, reopened.corruptRecords], [2, 0]);
        reopened.close();
      }),
    );

    it(
      "a log changed under it: what was counted as unread and is not there any more ends the reading",
      withDir((dir) => {
        const file = writeSegments(dir, { 1: [headerLine(1), kept(1, "one"), kept(2, "two")] });
        const log = new OutboxLog(file);
        assert.equal(log.unread, 2);
        truncateSync(join(dir, segmentName(1)), Buffer.byteLength(headerLine(1)));
        assert.equal(log.readNext(), undefined);
        assert.equal(log.unread, 0);
        log.close();
      }),
    );
  });
});
