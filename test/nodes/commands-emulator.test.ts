// The method, method response and c2d in nodes in flows against the local emulator, over each hub transport:
// a call answered by the flow, 404 at once for a method no node takes, 504 from the device when the flow does
// not answer, bad answers to Catch; C2D completed once the flow took it, settled by the flow (complete,
// abandon, reject), and a message sent while the c2d in node is being redeployed still reaches the flow.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import type { C2dFeedbackEvent } from "../../src/emulator/hub/types.js";
import {
  getNode,
  helper,
  loadFlow,
  messageMatching,
  startServer,
  stopServer,
  type FlowNode,
} from "../support/node-red.js";
import { symmetricKeyDeviceFlow } from "../support/device-flow.js";

/** The hub transports a device configuration can choose; each one runs every test below. */
const HUB_TRANSPORTS = ["amqp", "amqp-ws", "mqtt", "mqtt-ws"] as const;

/** This file's own address: in Azure's layout the hub's ports are fixed (5671, 8883, 443). */
const HUB_HOST = "127.0.0.151";

const WAIT_MS = 20_000;

interface Msg {
  payload?: unknown;
  topic?: string;
  method?: string;
  requestId?: string;
  lockToken?: string;
  messageId?: string;
  properties?: Record<string, string>;
  iothub?: { state: string };
  error?: { message: string };
  [key: string]: unknown;
}

/** A method node (id "method") taking `methods`, wired to a helper "calls" unless told otherwise. */
function methodNodes(
  methods: string,
  options: { responseTimeout?: number; wires?: string[][] } = {},
): FlowNode[] {
  const { wires = [["calls"]], ...rest } = options;
  return [
    { id: "method", type: "provisio-azure-method", z: "tab", device: "device", methods, ...rest, wires },
    { id: "calls", type: "helper", z: "tab" },
  ];
}

/** A method response node (id "response") wired to a helper "answered". */
function responseNodes(): FlowNode[] {
  return [
    {
      id: "response",
      type: "provisio-azure-method-response",
      z: "tab",
      device: "device",
      wires: [["answered"]],
    },
    { id: "answered", type: "helper", z: "tab" },
  ];
}

/** A c2d in node (id "c2d") wired to a helper "received"; with an input when the flow settles. */
function c2dNodes(settle: "auto" | "manual"): FlowNode[] {
  return [
    {
      id: "c2d",
      type: "provisio-azure-c2d-in",
      z: "tab",
      device: "device",
      settle,
      ...(settle === "manual" ? { inputs: 1 } : {}),
      wires: [["received"]],
    },
    { id: "received", type: "helper", z: "tab" },
  ];
}

function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

for (const hubTransport of HUB_TRANSPORTS) {
  describe(`method, method response and c2d in against the emulator (${hubTransport})`, () => {
    let dataDir: string;
    let emulator: Emulator;
    let counter = 0;
    // MQTT has no abandon or reject: the SDK acknowledges (completes) a message as it arrives.
    const settlesItself = hubTransport.startsWith("mqtt");

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "provisio-commands-nodes-"));
      emulator = await startEmulator({ dataDir, hubHost: HUB_HOST, hubHttpsPort: 443 });
      await startServer();
    });

    afterEach(async () => {
      await helper.unload();
    });

    after(async () => {
      await stopServer();
      await emulator?.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    /** A symmetric-key device flow with `nodes` wired to it; resolves once connected. */
    async function deviceFlow(
      nodes: FlowNode[],
    ): Promise<{ deviceId: string; flow: FlowNode[]; credentials: Record<string, Record<string, string>> }> {
      counter += 1;
      const deviceId = `nodes-${hubTransport}-${counter}`;
      const key = Buffer.from(`key-of-${deviceId}-0123456789abcdef`).toString("base64");
      emulator.dps.store.putIndividualEnrollment({
        registrationId: deviceId,
        attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
      });
      const { flow, credentials } = symmetricKeyDeviceFlow(emulator, {
        registrationId: deviceId,
        key,
        device: { outboxStorage: "memory", hubTransport },
        telemetry: false,
        extra: nodes,
      });
      await loadFlow(flow, credentials);
      await messageMatching<Msg>("states", (m) => m.payload === "connected", 30_000);
      return { deviceId, flow, credentials };
    }

    const hub = (): string => emulator.endpoints.hub.hostName;

    function feedback(
      deviceId: string,
      outcome: C2dFeedbackEvent["outcome"],
      messageId: string,
    ): Promise<void> {
      return within(
        new Promise<void>((resolve) => {
          const onFeedback = (event: C2dFeedbackEvent): void => {
            if (event.deviceId !== deviceId || event.messageId !== messageId || event.outcome !== outcome)
              return;
            emulator.hub.service.off("c2dFeedback", onFeedback);
            resolve();
          };
          emulator.hub.service.on("c2dFeedback", onFeedback);
        }),
        `${outcome} ${messageId}`,
      );
    }

    it("a method call is answered by the flow; a method no node takes gets 404 at once", async () => {
      const { deviceId } = await deviceFlow([
        ...methodNodes("echo, setRecipe", { responseTimeout: 30, wires: [["calls", "response"]] }),
        ...responseNodes(),
      ]);
      const call = messageMatching<Msg>("calls", () => true);
      const answered = messageMatching<Msg>("answered", () => true);
      const result = await within(
        emulator.hub.service.invokeMethod(hub(), deviceId, {
          methodName: "setRecipe",
          payload: { recipe: "PET-500" },
          responseTimeoutInSeconds: 10,
        }),
        "method result",
      );
      assert.deepEqual(result, { status: 200, payload: { recipe: "PET-500" } });
      const emitted = await call;
      assert.equal(emitted.method, "setRecipe");
      assert.equal(emitted.topic, "setRecipe");
      assert.equal(typeof emitted.requestId, "string");
      assert.equal(emitted.iothub?.state, "connected");
      assert.equal((await answered).requestId, emitted.requestId);

      const unknown = await within(
        emulator.hub.service.invokeMethod(hub(), deviceId, {
          methodName: "reboot",
          responseTimeoutInSeconds: 120,
        }),
        "404 well before the caller's 120 s",
      );
      assert.equal(unknown.status, 404);
      assert.match(JSON.stringify(unknown.payload), /reboot.{0,4} is not implemented/);
    });

    it("a call the flow leaves unanswered gets 504 from the device after the node's timeout", async () => {
      const { deviceId } = await deviceFlow([...methodNodes("", { responseTimeout: 1 })]);
      const caught = messageMatching<Msg>("caught", (m) => m.method === "anything");
      const result = await within(
        emulator.hub.service.invokeMethod(hub(), deviceId, {
          methodName: "anything",
          responseTimeoutInSeconds: 15,
        }),
        "the device's 504",
      );
      assert.equal(result.status, 504);
      assert.match(JSON.stringify(result.payload), /no answer from the device's flow within 1000 ms/);
      const error = await caught;
      assert.match(error.error?.message ?? "", /"anything" got no answer from the flow within 1 s: .* 504/);
      assert.equal(typeof error.requestId, "string");
    });

    it("bad answers go to Catch with the msg, and a good one still answers the call", async () => {
      const { deviceId } = await deviceFlow([...methodNodes("read"), ...responseNodes()]);
      const emitted = messageMatching<Msg>("calls", () => true);
      const result = emulator.hub.service.invokeMethod(hub(), deviceId, {
        methodName: "read",
        responseTimeoutInSeconds: 15,
      });
      const call = await emitted;
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const badAnswers: Array<[Msg, RegExp]> = [
        [{ requestId: call.requestId, payload: circular, tag: 1 }, /JSON-serialisable/],
        [{ requestId: call.requestId, payload: "x".repeat(130 * 1024), tag: 2 }, /IoT Hub allows 131072/],
        [
          { requestId: call.requestId, payload: 1, statusCode: "ok", tag: 3 },
          /statusCode must be a whole number/,
        ],
        [{ payload: 1, tag: 4 }, /msg\.requestId is missing/],
        [{ requestId: "no-such-call", payload: 1, tag: 5 }, /no method call no-such-call is waiting/],
      ];
      for (const [msg, expected] of badAnswers) {
        const caught = messageMatching<Msg>("caught", (m) => m.tag === msg.tag);
        getNode("response").receive(msg);
        const error = await caught;
        assert.match(error.error?.message ?? "", expected);
      }
      getNode("response").receive({ requestId: call.requestId, statusCode: 202, payload: { value: 7 } });
      assert.deepEqual(await within(result, "the good answer"), { status: 202, payload: { value: 7 } });
    });

    it("c2d in completes a message once the flow took it, with body, properties and ids", async () => {
      const { deviceId } = await deviceFlow([...c2dNodes("auto")]);
      const received = messageMatching<Msg>("received", () => true);
      const completed = feedback(deviceId, "completed", "c2d-auto");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, {
        body: "open valve 3",
        messageId: "c2d-auto",
        correlationId: "job-1",
        properties: { line: "A" },
      });
      const msg = await received;
      assert.equal(msg.payload, "open valve 3");
      assert.equal(msg.messageId, "c2d-auto");
      assert.equal(msg.correlationId, "job-1");
      assert.deepEqual(msg.properties, { line: "A" });
      assert.equal(typeof msg.expiryTimeUtc, "string");
      assert.equal(msg.lockToken, undefined);
      assert.equal(msg.iothub?.state, "connected");
      await completed;

      const json = messageMatching<Msg>("received", (m) => m.messageId === "c2d-json");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, {
        body: JSON.stringify({ valve: 3, open: true }),
        contentType: "application/json",
        messageId: "c2d-json",
      });
      const parsed = await json;
      assert.deepEqual(parsed.payload, { valve: 3, open: true });
      assert.equal(parsed.contentType, "application/json");

      const bytes = messageMatching<Msg>("received", (m) => m.messageId === "c2d-bytes");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, {
        body: Buffer.from([0, 1, 254]),
        contentType: "application/octet-stream",
        messageId: "c2d-bytes",
      });
      const binary = await bytes;
      assert.ok(Buffer.isBuffer(binary.payload));
      assert.deepEqual([...binary.payload], [0, 1, 254]);

      // A body that contradicts its JSON content type: rejected (not redelivered), and Catch hears it.
      const caught = messageMatching<Msg>("caught", (m) => m.messageId === "c2d-broken");
      const rejected = feedback(deviceId, settlesItself ? "completed" : "rejected", "c2d-broken");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, {
        body: "{broken",
        contentType: "application/json",
        messageId: "c2d-broken",
      });
      const error = await caught;
      assert.match(error.error?.message ?? "", /says it is JSON, but its body is not/);
      assert.equal(error.payload, "{broken");
      await rejected;
    });

    it("c2d in, the flow settles: complete, abandon (delivered again) and reject; a wrong settle goes to Catch", async () => {
      const { deviceId } = await deviceFlow([...c2dNodes("manual")]);
      const first = messageMatching<Msg>("received", (m) => m.messageId === "m-complete");
      const completed = feedback(deviceId, "completed", "m-complete");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "1", messageId: "m-complete" });
      const one = await first;
      assert.equal(typeof one.lockToken, "string");
      getNode("c2d").receive({ ...one, c2d: "complete" });
      await completed;

      const caught = messageMatching<Msg>("caught", (m) => m.tag === "again");
      getNode("c2d").receive({ lockToken: one.lockToken, c2d: "complete", tag: "again" });
      assert.match((await caught).error?.message ?? "", /waits to be settled/);
      const wrong = messageMatching<Msg>("caught", (m) => m.tag === "wrong");
      getNode("c2d").receive({ lockToken: one.lockToken, c2d: "accept", tag: "wrong" });
      assert.match((await wrong).error?.message ?? "", /msg\.c2d must be complete, abandon or reject/);

      const firstDelivery = messageMatching<Msg>("received", (m) => m.messageId === "m-abandon");
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "2", messageId: "m-abandon" });
      const abandonedMsg = await firstDelivery;
      if (settlesItself) {
        // Already completed by the SDK: abandon and reject cannot give it back, and Catch is told so.
        for (const outcome of ["abandon", "reject"]) {
          const refused = messageMatching<Msg>("caught", (m) => m.tag === outcome);
          getNode("c2d").receive({ ...abandonedMsg, c2d: outcome, tag: outcome });
          assert.match(
            (await refused).error?.message ?? "",
            new RegExp(`could not be settled \\(${outcome}\\)`),
          );
        }
        return;
      }
      const abandoned = feedback(deviceId, "abandoned", "m-abandon");
      const redelivered = messageMatching<Msg>(
        "received",
        (m) => m.messageId === "m-abandon" && m.lockToken !== abandonedMsg.lockToken,
      );
      getNode("c2d").receive({ ...abandonedMsg, c2d: "abandon" });
      await abandoned;
      const again = await redelivered;
      const rejected = feedback(deviceId, "rejected", "m-abandon");
      getNode("c2d").receive({ ...again, c2d: "reject" });
      await rejected;
    });

    it("a C2D message sent while the c2d in node is redeployed reaches the redeployed node", async () => {
      const { deviceId, flow, credentials } = await deviceFlow(c2dNodes("auto"));
      const withoutC2d = flow.filter((node) => node.id !== "c2d");
      await helper.setFlows(withoutC2d, "nodes", credentials);
      emulator.hub.service.sendCloudToDevice(hub(), deviceId, { body: "while away", messageId: "redeploy" });
      // Nothing settles it while no c2d in node is there.
      const early = feedback(deviceId, "completed", "redeploy");
      await new Promise((resolve) => setTimeout(resolve, 500));
      await helper.setFlows(flow, "nodes", credentials);
      const received = await messageMatching<Msg>("received", (m) => m.messageId === "redeploy");
      assert.equal(received.payload, "while away");
      await early;
      assert.equal(emulator.hub.service.connectionCount(), 1, "the device kept its one connection");
    });
  });
}
