// method: direct-method calls for the device (all, or the names listed) as messages; a method response node
// answers them. Calls nobody answers in time get 504, names no node handles 404 (src/device/method-dispatcher.ts).
import type { Node, NodeAPI, NodeDef } from "node-red";
import { attachToDevice } from "./shared/flow-node.js";
import { errorText } from "./shared/messages.js";
import { iothubOf } from "./shared/status.js";

interface MethodNodeDef extends NodeDef {
  device: string;
  /** Method names separated by commas or spaces; empty = every method no other method node names. */
  methods: string;
  /** Seconds the flow has to answer a call. */
  responseTimeout: number | string;
}

/** Within IoT Hub's range for a method call's response timeout (5 to 300 s); a bit below serves best. */
const TIMEOUT_RANGE_S = { min: 1, max: 300, default: 30 };

function methodNamesOf(text: unknown): string[] {
  return typeof text === "string" ? text.split(/[\s,]+/).filter((name) => name.length > 0) : [];
}

export = function register(RED: NodeAPI): void {
  function AzureIotMethodNode(this: Node, def: MethodNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const names = methodNamesOf(def.methods);
    const timeoutS =
      def.responseTimeout === "" || def.responseTimeout === undefined
        ? TIMEOUT_RANGE_S.default
        : Number(def.responseTimeout);
    const { device } = attachToDevice(RED, node, def.device, { kind: "method" });
    const session = device?.session;
    if (!session) return;
    if (!(timeoutS >= TIMEOUT_RANGE_S.min && timeoutS <= TIMEOUT_RANGE_S.max)) {
      node.error(errorText(RED, "responseTimeoutRange"));
      node.status({ fill: "red", shape: "dot", text: errorText(RED, "responseTimeoutRange") });
      return;
    }
    const remove = session.handleMethods(
      (call) => {
        node.send({
          topic: call.methodName,
          payload: call.payload,
          method: call.methodName,
          requestId: call.requestId,
          iothub: iothubOf(session.status),
        });
      },
      {
        ...(names.length > 0 ? { names } : {}),
        responseTimeoutMs: timeoutS * 1000,
        // The caller got 504; the flow and a Catch node hear why, with the call.
        unanswered: (call) => {
          node.error(errorText(RED, "methodUnanswered", { method: call.methodName, seconds: timeoutS }), {
            topic: call.methodName,
            payload: call.payload,
            method: call.methodName,
            requestId: call.requestId,
            iothub: iothubOf(session.status),
          });
        },
      },
    );
    node.on("close", remove);
  }

  RED.nodes.registerType("provisio-azure-method", AzureIotMethodNode);
};
