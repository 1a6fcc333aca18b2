// method response: answers the direct-method call a method node emitted (msg.requestId) with msg.statusCode
// and msg.payload; passes the msg on once the answer left.
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { attachToDevice } from "./shared/flow-node.js";
import { localized, NodeConfigurationError, NodeInputError } from "./shared/messages.js";
import { iothubOf } from "./shared/status.js";

interface MethodResponseNodeDef extends NodeDef {
  device: string;
  /** The status when msg.statusCode is not set. */
  statusCode: number | string;
}

export = function register(RED: NodeAPI): void {
  function AzureIotMethodResponseNode(this: Node, def: MethodResponseNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const { device, problem } = attachToDevice(RED, node, def.device, { kind: "method-response" });
    const defaultStatus =
      def.statusCode === "" || def.statusCode === undefined ? 200 : Number(def.statusCode);

    node.on("input", (msg: NodeMessageInFlow, send, done) => {
      const session = device?.session;
      if (!session) return done(problem ?? localized(RED, new NodeConfigurationError("deviceUnusable")));
      const requestId = msg.requestId;
      if (typeof requestId !== "string" || requestId.length === 0) {
        return done(localized(RED, new NodeInputError("methodRequestIdMissing")));
      }
      const status = msg.statusCode === undefined || msg.statusCode === null ? defaultStatus : msg.statusCode;
      if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 999) {
        return done(
          localized(
            RED,
            new NodeInputError("statusCodeInvalid", { value: JSON.stringify(status) ?? typeof status }),
          ),
        );
      }
      session.respondToMethod(requestId, status, msg.payload).then(
        () => {
          msg.iothub = iothubOf(session.status);
          send(msg);
          done();
        },
        (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  RED.nodes.registerType("provisio-azure-method-response", AzureIotMethodResponseNode);
};
