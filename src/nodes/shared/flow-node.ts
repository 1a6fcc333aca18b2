// What every flow node does with its device config node: find it, register, deregister on close.
import type { Node, NodeAPI } from "node-red";
import type { DeviceConfigNode, DeviceUser } from "./device-user.js";
import { errorText, localized, NodeConfigurationError, translate } from "./messages.js";

export interface AttachedDevice {
  device: DeviceConfigNode | undefined;
  /** Why the node cannot work (no device selected, or an unusable configuration), for done(err). */
  problem: Error | undefined;
}

export function attachToDevice(
  RED: NodeAPI,
  node: Node,
  deviceId: string,
  user: Omit<DeviceUser, "node">,
): AttachedDevice {
  const device = deviceId ? (RED.nodes.getNode(deviceId) as DeviceConfigNode | null) : null;
  if (!device) {
    node.status({ fill: "red", shape: "ring", text: translate(RED, "azure-iot.status.noDevice") });
    return { device: undefined, problem: localized(RED, new NodeConfigurationError("noDevice")) };
  }
  const registered: DeviceUser = { ...user, node };
  const problem = device.register(registered);
  if (problem) {
    node.error(
      errorText(RED, "deviceProblem", { device: device.name || device.id, problem: problem.message }),
    );
  }
  node.on("close", (removed: boolean, done: () => void) => {
    void device.deregister(registered, removed).then(done);
  });
  return { device, problem };
}
