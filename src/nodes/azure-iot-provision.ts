// provision: connects the device (DPS, then IoT Hub) and emits one message per state change.
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { describeError, type SessionStateEvent } from "../device/index.js";
import { attachToDevice } from "./shared/flow-node.js";
import { localized, NodeConfigurationError, NodeInputError } from "./shared/messages.js";
import { iothubOf } from "./shared/status.js";

interface ProvisionNodeDef extends NodeDef {
  device: string;
  connectOnDeploy: boolean;
}

export = function register(RED: NodeAPI): void {
  function AzureIotProvisionNode(this: Node, def: ProvisionNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const { device, problem } = attachToDevice(RED, node, def.device, {
      kind: "provision",
      connectOnDeploy: def.connectOnDeploy !== false,
      onState: (event: SessionStateEvent) => {
        const msg = { topic: "state", payload: event.state, iothub: iothubOf(event) };
        node.send(msg);
        // A Catch node hears about a failure once per outage, not at every retry.
        if (event.error && (event.state === "error" || (event.state === "retrying" && event.attempt === 1))) {
          node.error(event.error, { topic: "state", payload: event.state, iothub: iothubOf(event) });
        }
      },
    });

    node.on("input", (msg: NodeMessageInFlow, _send, done) => {
      const session = device?.session;
      if (!session) return done(problem ?? localized(RED, new NodeConfigurationError("deviceUnusable")));
      const action = typeof msg.topic === "string" ? msg.topic.trim().toLowerCase() : "";
      try {
        switch (action) {
          case "connect":
            session.start();
            return done();
          case "reprovision":
            session.reprovision();
            return done();
          case "disconnect":
            session.stop().then(
              () => done(),
              (error: unknown) => done(new Error(describeError(error))),
            );
            return;
          default:
            return done(localized(RED, new NodeInputError("unknownTopic", { topic: String(msg.topic) })));
        }
      } catch (error) {
        done(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  RED.nodes.registerType("provisio-azure-provision", AzureIotProvisionNode);
};
