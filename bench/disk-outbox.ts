// The outbox on disk: writing 100,000 messages into the log, and reading them back as a restarted session
// does, against keeping the same messages in the in-memory outbox.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Outbox } from "../src/device/outbox.js";
import { OutboxLog } from "../src/device/outbox-log.js";
import { toHubMessage } from "../src/device/message-mapping.js";
import { samplePayload } from "./telemetry.js";

export interface DiskRound {
  /** msg/s written into the log (each write survives a process kill when it returns). */
  keepPerSecond: number;
  /** msg/s pushed into the in-memory outbox. */
  memoryPerSecond: number;
  /** msg/s read back from the log by a new OutboxLog, as after a restart. */
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
    for (const message of messages) log.keep(message);
    log.close();
    const keepPerSecond = count / ((performance.now() - started) / 1000);
    started = performance.now();
    const memory = new Outbox<unknown>({ capacity: count });
    for (const message of messages) memory.push({ message });
    const memoryPerSecond = count / ((performance.now() - started) / 1000);
    started = performance.now();
    const reopened = new OutboxLog(file);
    const back = reopened.recovered();
    const replayPerSecond = back.length / ((performance.now() - started) / 1000);
    reopened.close();
    if (back.length !== count) throw new Error(`replayed ${back.length} of ${count}`);
    return { keepPerSecond, memoryPerSecond, replayPerSecond };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
