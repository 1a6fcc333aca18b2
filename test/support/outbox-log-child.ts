// Child process for the kill -9 test: keeps `count` messages in an outbox log, marks the first `done` of them
// done, says "kept" on stdout (after the turn's end, when the done records are written) and waits to be killed.
import { Message } from "azure-iot-device";
import { OutboxLog } from "../../src/device/outbox-log.js";

const [file, countText, doneText] = process.argv.slice(2);
const log = new OutboxLog(file, { syncEveryMs: 60_000, segmentBytes: 16 * 1024 });
const seqs: number[] = [];
for (let i = 0; i < Number(countText); i++) {
  const message = new Message(JSON.stringify({ i }));
  message.messageId = `kill-${i}`;
  message.properties.add("n", String(i));
  seqs.push(log.append(message, 10));
}
for (const seq of seqs.slice(0, Number(doneText))) log.done(seq, 10);
setImmediate(() => process.stdout.write("kept\n"));
setInterval(() => undefined, 1_000);
