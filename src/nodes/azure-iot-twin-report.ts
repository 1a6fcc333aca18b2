// twin report: msg.payload as a reported-properties patch; passes the msg on with the new version.
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { attachToDevice } from "./shared/flow-node.js";
import { localized, NodeConfigurationError, NodeInputError } from "./shared/messages.js";
import { iothubOf } from "./shared/status.js";

interface TwinReportNodeDef extends NodeDef {
  device: string;
}

export = function register(RED: NodeAPI): void {
  function AzureIotTwinReportNode(this: Node, def: TwinReportNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const { device, problem } = attachToDevice(RED, node, def.device, { kind: "twin-report" });

    node.on("input", (msg: NodeMessageInFlow, send, done) => {
      const session = device?.session;
      if (!session) return done(problem ?? localized(RED, new NodeConfigurationError("deviceUnusable")));
      const patch = msg.payload;
      if (typeof patch !== "object" || patch === null || Array.isArray(patch) || Buffer.isBuffer(patch)) {
        return done(localized(RED, new NodeInputError("patchNotObject")));
      }
      session.reportProperties(patch as Record<string, unknown>).then(
        (version) => {
          msg.version = version;
          msg.iothub = iothubOf(session.status);
          send(msg);
          done();
        },
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  RED.nodes.registerType("provisio-azure-twin-report", AzureIotTwinReportNode);
};
