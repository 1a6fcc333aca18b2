// telemetry: sends msg.payload to IoT Hub; passes the msg on once the hub accepted it.
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { TelemetryOptions } from "../device/index.js";
import { attachToDevice } from "./shared/flow-node.js";
import { localized, NodeConfigurationError, NodeInputError } from "./shared/messages.js";
import { telemetryOptionsOf } from "./shared/telemetry-options.js";
import { iothubOf } from "./shared/status.js";

interface TelemetryNodeDef extends NodeDef {
  device: string;
}

export = function register(RED: NodeAPI): void {
  function AzureIotTelemetryNode(this: Node, def: TelemetryNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const { device, problem } = attachToDevice(RED, node, def.device, { kind: "telemetry" });

    node.on("input", (msg: NodeMessageInFlow, send, done) => {
      const session = device?.session;
      if (!session) return done(problem ?? localized(RED, new NodeConfigurationError("deviceUnusable")));
      let options: TelemetryOptions;
      try {
        if (msg.payload === undefined || msg.payload === null) throw new NodeInputError("emptyPayload");
        options = telemetryOptionsOf(msg);
      } catch (error) {
        return done(localized(RED, error as Error));
      }
      const payload = msg.payload as object | string | Buffer;
      const sent = typeof payload === "number" || typeof payload === "boolean" ? String(payload) : payload;
      session.sendTelemetry(sent, options).then(
        (outcome) => {
          // "stored": on disk beyond the in-memory window, sent later in order (the device's outbox).
          msg.iothub = { ...iothubOf(session.status), telemetry: outcome };
          send(msg);
          done();
        },
        (error: unknown) => {
          msg.iothub = iothubOf(session.status);
          done(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  RED.nodes.registerType("provisio-azure-telemetry", AzureIotTelemetryNode);
};
