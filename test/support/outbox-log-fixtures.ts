// What the outbox log tests share: a plain message, a temporary folder per test and the log read to its end.
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Message } from "azure-iot-device";
import type { OutboxLog } from "../../src/device/outbox-log.js";

/** A message with just an id and a body (JSON naming the id unless given). */
export function plainMessage(id: string, body: string | Buffer = `{"id":"${id}"}`): Message {
  const m = new Message(body);
  m.messageId = id;
  return m;
}

/**
 * A test that gets a fresh folder (its real path: open files are found by the paths /proc shows for them),
 * removed afterwards.
 */
export function withDir(run: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "provisio-outbox-log-")));
    try {
      await run(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** Pages in every unread message. */
export function readAll(log: OutboxLog): Array<{ seq: number; bytes: number; message: Message }> {
  const out = [];
  for (let next = log.readNext(); next; next = log.readNext()) out.push(next);
  return out;
}

export function ids(log: OutboxLog): string[] {
  return readAll(log).map((r) => r.message.messageId);
}
