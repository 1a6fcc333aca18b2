// c2d in: cloud-to-device messages as messages. "auto" completes each one once the flow took it (after
// send); "manual" leaves it to the flow: a msg with msg.c2d = complete | abandon | reject and the emitted
// msg.lockToken, sent into this node's input, settles it.
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from "node-red";
import { C2D_OUTCOMES, describeError, type C2dOutcome, type CloudMessage } from "../device/index.js";
import { cloudMessageFields } from "./shared/cloud-message.js";
import { attachToDevice } from "./shared/flow-node.js";
import { errorText, localized, NodeConfigurationError, NodeInputError } from "./shared/messages.js";
import { iothubOf } from "./shared/status.js";

interface C2dInNodeDef extends NodeDef {
  device: string;
  settle: "auto" | "manual";
}

export = function register(RED: NodeAPI): void {
  function AzureIotC2dInNode(this: Node, def: C2dInNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const mode = def.settle === "manual" ? "manual" : "auto";
    const { device, problem } = attachToDevice(RED, node, def.device, { kind: "c2d-in" });
    const session = device?.session;

    const settleInBackground = (message: CloudMessage, outcome: C2dOutcome, msg: NodeMessage): void => {
      session?.settleCloudMessage(message.lockToken, outcome).catch((error: unknown) => {
        node.error(errorText(RED, "c2dSettleFailed", { outcome, reason: describeError(error) }), msg);
      });
    };

    if (session) {
      const remove = session.receiveCloudMessages((message) => {
        const { fields, error } = cloudMessageFields(message);
        const msg: NodeMessage = {
          topic: "c2d",
          ...fields,
          ...(mode === "manual" ? { lockToken: message.lockToken } : {}),
          iothub: iothubOf(session.status),
        };
        if (error) {
          // Sending it again cannot mend a body that contradicts its content type: rejected, and Catch hears it.
          node.error(localized(RED, error).message, msg);
          settleInBackground(message, "reject", msg);
          return;
        }
        node.send(msg);
        if (mode === "auto") settleInBackground(message, "complete", msg);
      });
      node.on("close", remove);
    }

    node.on("input", (msg: NodeMessageInFlow, _send, done) => {
      if (!session) return done(problem ?? localized(RED, new NodeConfigurationError("deviceUnusable")));
      if (mode !== "manual") return done(localized(RED, new NodeInputError("c2dNotManual")));
      const outcome = typeof msg.c2d === "string" ? msg.c2d.trim().toLowerCase() : msg.c2d;
      if (!C2D_OUTCOMES.includes(outcome as C2dOutcome)) {
        return done(localized(RED, new NodeInputError("c2dOutcomeInvalid", { value: String(msg.c2d) })));
      }
      if (typeof msg.lockToken !== "string" || msg.lockToken.length === 0) {
        return done(localized(RED, new NodeInputError("c2dLockTokenMissing")));
      }
      const chosen = outcome as C2dOutcome;
      session.settleCloudMessage(msg.lockToken, chosen).then(
        () => done(),
        // Named with the outcome: over MQTT the SDK's own text says only that abandon/reject is not implemented.
        (error: unknown) =>
          done(
            new Error(errorText(RED, "c2dSettleFailed", { outcome: chosen, reason: describeError(error) })),
          ),
      );
    });
  }

  RED.nodes.registerType("provisio-azure-c2d-in", AzureIotC2dInNode);
};
