// Bad configuration and bad input reach a Catch node with the msg and a red status; nothing crashes.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import type { SinonSpy } from "sinon";
import {
  getNode,
  loadFlow,
  messageMatching,
  nextMessage,
  startServer,
  stopServer,
  type FlowNode,
} from "../support/node-red.js";
import { unreachableDpsNode } from "../support/device-flow.js";

interface CaughtMessage {
  _msgid: string;
  payload: unknown;
  error: { message: string; source: { id: string } };
}

const dps = unreachableDpsNode();

function flowWith(nodes: FlowNode[], deviceOverrides: Record<string, unknown> = {}): FlowNode[] {
  return [
    { id: "tab", type: "tab" },
    { ...dps },
    {
      id: "device",
      type: "provisio-azure-device",
      dps: "dps",
      attestation: "symmetricKey",
      registrationId: "dev-1",
      outboxLimit: 10,
      outboxOverflow: "drop-oldest",
      ...deviceOverrides,
    },
    ...nodes.map((n) => ({ z: "tab", ...n })),
    { id: "catcher", type: "catch", z: "tab", scope: null, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "tab" },
  ];
}

const statusSpy = (id: string): SinonSpy => Reflect.get(getNode(id), "status") as SinonSpy;

describe("node errors reach a Catch node", () => {
  before(startServer);
  after(stopServer);
  afterEach(async () => {
    const { helper } = await import("../support/node-red.js");
    await helper.unload();
  });

  it("a device without its key: red status, and a message sent to telemetry is caught with its msg", async () => {
    await loadFlow(
      flowWith([
        { id: "telemetry", type: "provisio-azure-telemetry", device: "device", wires: [["out"]] },
        { id: "out", type: "helper" },
      ]),
    );
    assert.ok(statusSpy("telemetry").calledWithMatch({ fill: "red" }));
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ payload: { temperature: 21 } });
    const msg = await caught;
    assert.deepEqual(msg.payload, { temperature: 21 });
    assert.match(msg.error.message, /no device key set/);
    assert.equal(msg.error.source.id, "telemetry");
  });

  it("an unreadable DPS payload in the device configuration is reported", async () => {
    await loadFlow(
      flowWith([{ id: "twin", type: "provisio-azure-twin-report", device: "device", wires: [] }], {
        payload: "{not json",
      }),
      { device: { symmetricKey: Buffer.alloc(32, 1).toString("base64") } },
    );
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("twin").receive({ payload: { firmware: "1.0" } });
    assert.match((await caught).error.message, /DPS payload is not valid JSON/);
  });

  it("a malformed ID scope is reported with what an ID scope looks like", async () => {
    const flow = flowWith([
      { id: "telemetry", type: "provisio-azure-telemetry", device: "device", wires: [] },
    ]);
    Object.assign(
      flow.find((n) => n.id === "dps")!,
      { idScope: "my-scope" },
    );
    await loadFlow(flow, { device: { symmetricKey: Buffer.alloc(32, 1).toString("base64") } });
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ payload: 1 });
    assert.match((await caught).error.message, /0ne/);
  });

  it("a ${VAR} that is not set is reported by its name, not as a bad value", async () => {
    const unset = "PROVISIO_TEST_UNSET_TPM_PORT";
    assert.equal(process.env[unset], undefined);
    const flow = flowWith(
      [{ id: "telemetry", type: "provisio-azure-telemetry", device: "device", wires: [] }],
      { attestation: "tpm", tpm: "tpm", registrationId: "" },
    );
    flow.push({
      id: "tpm",
      type: "provisio-azure-tpm",
      kind: "swtpm",
      host: "127.0.0.1",
      port: `\${${unset}}`,
      ctrlPort: 2322,
    });
    await loadFlow(flow);
    assert.ok(statusSpy("telemetry").calledWithMatch({ fill: "red" }));
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ payload: 1 });
    const { message } = (await caught).error;
    assert.match(message, new RegExp(`environment variable ${unset} is not set$`));
    assert.doesNotMatch(message, /65535/);
  });

  it("a flow node without a device configuration says so", async () => {
    await loadFlow(flowWith([{ id: "telemetry", type: "provisio-azure-telemetry", device: "", wires: [] }]));
    assert.ok(statusSpy("telemetry").calledWithMatch({ fill: "red", shape: "ring" }));
    const caught = nextMessage<CaughtMessage>("caught");
    getNode("telemetry").receive({ payload: 1 });
    assert.match((await caught).error.message, /no device configuration selected/);
  });

  describe("with a usable device that is not connected", () => {
    const credentials = { device: { symmetricKey: Buffer.alloc(32, 1).toString("base64") } };
    const nodes: FlowNode[] = [
      {
        id: "provision",
        type: "provisio-azure-provision",
        device: "device",
        connectOnDeploy: false,
        wires: [["states"]],
      },
      { id: "states", type: "helper" },
      { id: "telemetry", type: "provisio-azure-telemetry", device: "device", wires: [] },
      { id: "twin", type: "provisio-azure-twin-report", device: "device", wires: [] },
    ];

    it("refuses an unknown provision command", async () => {
      await loadFlow(flowWith(nodes), credentials);
      const caught = nextMessage<CaughtMessage>("caught");
      getNode("provision").receive({ topic: "explode" });
      const msg = await caught;
      assert.match(msg.error.message, /unknown msg.topic "explode"/);
      assert.equal(msg.error.source.id, "provision");
    });

    it("refuses telemetry without a payload and with a malformed msg.properties", async () => {
      await loadFlow(flowWith(nodes), credentials);
      const first = nextMessage<CaughtMessage>("caught");
      getNode("telemetry").receive({});
      assert.match((await first).error.message, /msg.payload is empty/);
      const second = nextMessage<CaughtMessage>("caught");
      getNode("telemetry").receive({ payload: "x", properties: "nope" });
      assert.match((await second).error.message, /msg.properties must be an object/);
    });

    it("a full outbox drops the oldest: each to Catch, and the count stays in the status", async () => {
      await loadFlow(flowWith(nodes, { outboxStorage: "memory" }), credentials);
      const caught: CaughtMessage[] = [];
      (getNode("caught") as unknown as NodeJS.EventEmitter).on("input", (msg: CaughtMessage) =>
        caught.push(msg),
      );
      for (let i = 0; i < 12; i++) getNode("telemetry").receive({ payload: i, messageId: `over-${i}` });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(caught.length, 2);
      assert.match(caught[0].error.message, /outbox/i);
      const texts = statusSpy("telemetry").args.map(
        (args: unknown[]) => (args[0] as { text?: string }).text ?? "",
      );
      assert.ok(
        texts.some((text) => / · 2 dropped$/.test(text)),
        texts.join(" | "),
      );
    });

    it("a full outbox by bytes refuses the new ones: each to Catch, 'N refused' in the status", async () => {
      // 0.00015 MB = 157 bytes: two messages of 54 bytes (body, id, content type and encoding) fit, not a third.
      await loadFlow(
        flowWith(nodes, {
          outboxStorage: "memory",
          outboxLimit: "",
          outboxMaxMegabytes: "0.00015",
          outboxOverflow: "reject-new",
        }),
        credentials,
      );
      const caught: CaughtMessage[] = [];
      (getNode("caught") as unknown as NodeJS.EventEmitter).on("input", (msg: CaughtMessage) =>
        caught.push(msg),
      );
      for (let i = 0; i < 5; i++) {
        getNode("telemetry").receive({ payload: { n: i, pad: "0123456789" }, messageId: `bytes-${i}` });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(caught.length, 3, JSON.stringify(caught.map((c) => c.error.message)));
      assert.match(caught[0].error.message, /outbox is full/);
      assert.equal((caught[0] as unknown as { messageId: string }).messageId, "bytes-2");
      const texts = statusSpy("telemetry").args.map(
        (args: unknown[]) => (args[0] as { text?: string }).text ?? "",
      );
      assert.ok(
        texts.some((text) => / · 3 refused$/.test(text)),
        texts.join(" | "),
      );
    });

    it("an outbox byte limit that is not a positive number is a configuration error", async () => {
      await loadFlow(flowWith(nodes, { outboxMaxMegabytes: "-1" }), credentials);
      const caught = nextMessage<CaughtMessage>("caught");
      getNode("telemetry").receive({ payload: 1 });
      assert.match((await caught).error.message, /megabytes/);
    });

    it("refuses a payload over 256 KB before queueing it", async () => {
      await loadFlow(flowWith(nodes), credentials);
      const caught = nextMessage<CaughtMessage>("caught");
      getNode("telemetry").receive({ payload: "x".repeat(256 * 1024 + 1) });
      assert.match((await caught).error.message, /256/);
    });

    it("refuses twin patches that are not objects, too deep or with illegal names", async () => {
      await loadFlow(flowWith(nodes), credentials);
      const deep: Record<string, unknown> = {};
      let cursor = deep;
      for (let i = 0; i < 11; i++) cursor = cursor.level = {};
      const cases: Array<[unknown, RegExp]> = [
        ["text", /must be an object/],
        [[1, 2], /must be an object/],
        [deep, /deep|levels|depth/i],
        [{ "bad.name": 1 }, /bad\.name|name/],
        [{ long: "x".repeat(5000) }, /4096/],
        [
          Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, "x".repeat(1000)])),
          /32|size|KB/i,
        ],
      ];
      for (const [payload, pattern] of cases) {
        const caught = nextMessage<CaughtMessage>("caught");
        getNode("twin").receive({ payload });
        assert.match((await caught).error.message, pattern, JSON.stringify(payload).slice(0, 40));
      }
    });

    it("connects on a connect message and reports each state change with msg.iothub", async () => {
      await loadFlow(flowWith(nodes), credentials);
      const provisioning = messageMatching<{
        payload: string;
        iothub: { state: string; registrationId?: string };
      }>("states", (m) => m.payload === "provisioning");
      getNode("provision").receive({ topic: "connect" });
      const msg = await provisioning;
      assert.equal(msg.iothub.state, "provisioning");
      assert.equal(msg.iothub.registrationId, "dev-1");
      assert.equal(
        JSON.stringify(msg).includes(credentials.device.symmetricKey),
        false,
        "no key in the message",
      );
    });
  });
});
