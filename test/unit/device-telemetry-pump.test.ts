// The telemetry pump's edges that the outbox and session tests leave open: a message exactly as large as the
// byte bound, a pause that holds back new messages too, the acknowledgement timeout measured from the send, a
// late acceptance from a taken-back window, and a log that cannot write. The hub link is a fake (pure logic:
// the pump only calls sendEvent).
import { describe, it, mock } from "node:test";
import assert from "node:assert/strict";
import { Message } from "azure-iot-device";
import {
  HubError,
  OperationTimeoutError,
  OutboxOverflowError,
  SessionStoppedError,
} from "../../src/device/errors.js";
import type { HubLink } from "../../src/device/hub-connection.js";
import type { OutboxLog } from "../../src/device/outbox-log.js";
import { messageBytes } from "../../src/device/outbox-record.js";
import type { RetryPolicy } from "../../src/device/retry-policy.js";
import {
  TelemetryPump,
  type TelemetryPause,
  type TelemetryPumpOptions,
} from "../../src/device/telemetry-pump.js";

function message(id: string): Message {
  const m = new Message("0123456789");
  m.messageId = id;
  return m;
}

/** A link whose sends wait until the test answers them, in any order. */
function heldLink(): { link: HubLink; sent: string[]; answers: Array<(error?: Error) => void> } {
  const sent: string[] = [];
  const answers: Array<(error?: Error) => void> = [];
  const link = {
    sendEvent: (m: Message) =>
      new Promise<void>((resolve, reject) => {
        sent.push(m.messageId);
        answers.push((error) => (error ? reject(error) : resolve()));
      }),
  } as unknown as HubLink;
  return { link, sent, answers };
}

function pump(options: Partial<TelemetryPumpOptions>): TelemetryPump {
  return new TelemetryPump({
    maxMessages: 1_000,
    maxBytes: 1_000_000,
    overflow: "drop-oldest",
    window: 4,
    ackTimeoutMs: 60_000,
    policy: { delayMs: () => 60_000 } as unknown as RetryPolicy,
    deviceId: () => "dev",
    linkFailed: () => undefined,
    paused: () => undefined,
    resumed: () => undefined,
    dropped: () => undefined,
    ...options,
  });
}

function throttled(): Error {
  return Object.assign(new Error("throttled by the hub"), { name: "ThrottlingError" });
}

async function turns(count = 5): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("telemetry pump", () => {
  it("a message exactly as large as the byte bound makes room under drop-oldest instead of being refused", async () => {
    const bytes = messageBytes(message("m1"));
    const outbox = pump({ maxBytes: bytes });
    const first = outbox.enqueue(message("m1"));
    const second = outbox.enqueue(message("m2"));
    await assert.rejects(first, OutboxOverflowError);
    assert.equal(outbox.size, 1);
    assert.equal(outbox.droppedCount, 1);
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await assert.rejects(second);
  });

  it("while paused by a throttled send, a new message does not go out either", async () => {
    const pauses: TelemetryPause[] = [];
    const outbox = pump({ paused: (pause) => pauses.push(pause) });
    const { link, sent, answers } = heldLink();
    outbox.attach(link);
    const first = outbox.enqueue(message("m1"));
    answers[0](throttled());
    await turns();
    assert.equal(pauses.length, 1);
    assert.equal(pauses[0].reason, "throttled");
    const second = outbox.enqueue(message("m2"));
    await turns();
    assert.deepEqual(sent, ["m1"], "nothing is sent until the pause ends");
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await assert.rejects(first);
    await assert.rejects(second);
  });

  it("a late acceptance from a window taken back does not reset the pause back-off", async () => {
    const attempts: number[] = [];
    const policy = {
      delayMs: (attempt: number) => {
        attempts.push(attempt);
        return 10;
      },
    } as unknown as RetryPolicy;
    const outbox = pump({ policy });
    const { link, sent, answers } = heldLink();
    outbox.attach(link);
    const pending = [outbox.enqueue(message("m1")), outbox.enqueue(message("m2"))];
    await turns();
    assert.deepEqual(sent, ["m1", "m2"]);
    answers[0](throttled()); // the window is taken back: m2's answer now belongs to nobody
    await turns();
    answers[1](); // m2's late acceptance
    await turns();
    await new Promise((resolve) => setTimeout(resolve, 30)); // the pause ends; m1 and m2 go again
    assert.deepEqual(sent, ["m1", "m2", "m1", "m2"]);
    answers[2](throttled());
    await turns();
    assert.deepEqual(attempts, [1, 2], "the second throttle in a row waits as the second attempt");
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await Promise.allSettled(pending);
  });

  it("an unanswered message fails the link once its acknowledgement is due, measured from its send, as a telemetry timeout", async () => {
    // A clock far from zero: a due time computed from the wrong terms lands hours away, or at once.
    const offset = 10_000_000;
    const now = performance.now.bind(performance);
    const clock = mock.method(performance, "now", () => now() + offset);
    try {
      const failures: Error[] = [];
      const outbox = pump({ ackTimeoutMs: 50, linkFailed: (_link, error) => failures.push(error) });
      const { link } = heldLink();
      outbox.attach(link);
      const sentAt = Date.now();
      const pending = outbox.enqueue(message("m1"));
      while (failures.length === 0 && Date.now() - sentAt < 5_000) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(failures.length, 1, "the link failed for the missing acknowledgement");
      assert.ok(Date.now() - sentAt >= 45, "not before the acknowledgement was due");
      assert.ok(failures[0] instanceof OperationTimeoutError);
      assert.equal(failures[0].message, "telemetry got no answer within 50 ms");
      outbox.rejectAll(new SessionStoppedError("telemetry"));
      await assert.rejects(pending);
    } finally {
      clock.mock.restore();
    }
  });

  it("a message the outbox log cannot write is refused with the log's own error", async () => {
    const full = Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
    const log = {
      size: 0,
      bytes: 0,
      append: () => {
        throw full;
      },
    } as unknown as OutboxLog;
    const outbox = pump({ log });
    await assert.rejects(outbox.enqueue(message("m1")), (error) => error === full);
  });
  it("refuses a window that is not a whole number >= 1, and takes a window of 1", () => {
    for (const window of [0, -1, 1.5]) {
      assert.throws(() => pump({ window }), {
        name: "RangeError",
        message: "the telemetry window must be a whole number >= 1",
      });
    }
    assert.equal(pump({ window: 1 }).size, 0);
  });

  it("counts the messages in flight as held in memory", async () => {
    const outbox = pump({ window: 1 });
    const { link, sent } = heldLink();
    outbox.attach(link);
    const pending = [outbox.enqueue(message("m1")), outbox.enqueue(message("m2"))];
    await turns();
    assert.deepEqual(sent, ["m1"]);
    assert.equal(outbox.inMemory, 2);
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await Promise.allSettled(pending);
  });

  it("an internal server error pauses as a hub error; leaving during the pause ends it", async () => {
    const pauses: TelemetryPause[] = [];
    let resumed = 0;
    const outbox = pump({ paused: (pause) => pauses.push(pause), resumed: () => (resumed += 1) });
    const { link, answers } = heldLink();
    outbox.attach(link);
    const pending = outbox.enqueue(message("m1"));
    answers[0](Object.assign(new Error("hub trouble"), { name: "InternalServerError" }));
    await turns();
    assert.deepEqual(
      pauses.map((pause) => pause.reason),
      ["hub-error"],
    );
    outbox.detach();
    assert.equal(resumed, 1, "detaching ends the pause and says so");
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await assert.rejects(pending);
  });

  it("a message the hub refuses for what it is is rejected with the hub's error as its cause", async () => {
    const outbox = pump({});
    const { link, answers } = heldLink();
    outbox.attach(link);
    const pending = outbox.enqueue(message("m1"));
    const tooLarge = Object.assign(new Error("message too large"), { name: "MessageTooLargeError" });
    answers[0](tooLarge);
    await assert.rejects(pending, (error) => error instanceof HubError && error.cause === tooLarge);
  });

  it("after a reconnect the acknowledgement timer runs for the new link", async () => {
    const failures: HubLink[] = [];
    const outbox = pump({ ackTimeoutMs: 50, linkFailed: (failed) => failures.push(failed) });
    const first = heldLink();
    outbox.attach(first.link);
    const pending = outbox.enqueue(message("m1"));
    await turns();
    outbox.detach();
    const second = heldLink();
    outbox.attach(second.link);
    assert.deepEqual(second.sent, ["m1"]);
    const started = Date.now();
    while (failures.length === 0 && Date.now() - started < 5_000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(failures, [second.link], "the unanswered resend fails the new link");
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await assert.rejects(pending);
  });

  it("a full outbox with every message in flight refuses a new one under drop-oldest, counted", async () => {
    const outbox = pump({ maxMessages: 1, window: 1 });
    const { link, sent } = heldLink();
    outbox.attach(link);
    const first = outbox.enqueue(message("m1"));
    await turns();
    assert.deepEqual(sent, ["m1"]);
    await assert.rejects(outbox.enqueue(message("m2")), OutboxOverflowError);
    assert.equal(outbox.droppedCount, 1);
    outbox.rejectAll(new SessionStoppedError("telemetry"));
    await assert.rejects(first);
  });
});
