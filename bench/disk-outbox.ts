// The outbox on disk: writing 100,000 messages into the segmented log, and paging them back in as a restarted
// session does (open, recount, read every message in order), against holding the same messages in memory.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OutboxLog } from "../src/device/outbox-log.js";
import { messageBytes } from "../src/device/outbox-record.js";
import { toHubMessage } from "../src/device/message-mapping.js";
import { samplePayload } from "./telemetry.js";

export interface DiskRound {
  /** msg/s written into the log (each write survives a process kill when it returns). */
  keepPerSecond: number;
  /** msg/s held in memory (an array of messages with their size, as the memory outbox holds them). */
  memoryPerSecond: number;
  /** msg/s read back by a new OutboxLog, as after a restart: the open's recount plus paging every message in. */
  replayPerSecond: number;
}

export function diskRound(count: number): DiskRound {
  const messages = Array.from({ length: count }, (_, i) => {
    const sample = samplePayload(i);
    return toHubMessage(sample.body, { properties: sample.properties, messageId: `disk-${i}` });
  });
  const dir = mkdtempSync(join(tmpdir(), "provisio-bench-outbox-"));
  try {
    const file = join(dir, "outbox.log");
    let started = performance.now();
    const log = new OutboxLog(file);
    for (const message of messages) log.append(message, messageBytes(message));
    log.close();
    const keepPerSecond = count / ((performance.now() - started) / 1000);
    started = performance.now();
    const memory: Array<{ message: unknown; bytes: number }> = [];
    for (const message of messages) memory.push({ message, bytes: messageBytes(message) });
    const memoryPerSecond = count / ((performance.now() - started) / 1000);
    started = performance.now();
    const reopened = new OutboxLog(file);
    let back = 0;
    for (let next = reopened.readNext(); next; next = reopened.readNext()) back += 1;
    const replayPerSecond = back / ((performance.now() - started) / 1000);
    reopened.close();
    if (back !== count) throw new Error(`replayed ${back} of ${count}`);
    return { keepPerSecond, memoryPerSecond, replayPerSecond };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
