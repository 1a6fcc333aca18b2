// twin in: the desired properties — the full set after every (re)connect, then each change.
import type { Node, NodeAPI, NodeDef } from "node-red";
import { mergeDesired, type Json } from "./shared/desired-document.js";
import { attachToDevice } from "./shared/flow-node.js";
import { iothubOf } from "./shared/status.js";

interface TwinInNodeDef extends NodeDef {
  device: string;
  output: "patch" | "merged";
}

export = function register(RED: NodeAPI): void {
  function AzureIotTwinInNode(this: Node, def: TwinInNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    let desired: Json | undefined;
    const iothub = () => (device?.session ? iothubOf(device.session.status) : undefined);

    const { device } = attachToDevice(RED, node, def.device, {
      kind: "twin-in",
      onTwin: (document: Json) => {
        desired = document;
        node.send({ topic: "desired", payload: document, version: document.$version, iothub: iothub() });
      },
      onDesired: (patch: Json) => {
        desired = mergeDesired(desired ?? {}, patch);
        if (patch.$version !== undefined) desired.$version = patch.$version;
        if (def.output === "merged") {
          node.send({ topic: "desired", payload: desired, version: desired.$version, iothub: iothub() });
        } else {
          node.send({ topic: "desired-patch", payload: patch, version: patch.$version, iothub: iothub() });
        }
      },
    });
  }

  RED.nodes.registerType("provisio-azure-twin-in", AzureIotTwinInNode);
};
