// DPS configuration node: where DPS is and which CA to trust besides the system ones.
import type { NodeAPI } from "node-red";
import {
  dpsConfigOf,
  type DpsConfigNode,
  type DpsCredentials,
  type DpsNodeDef,
} from "./shared/dps-config.js";

export = function register(RED: NodeAPI): void {
  function AzureIotDpsNode(this: DpsConfigNode, def: DpsNodeDef): void {
    RED.nodes.createNode(this, def);
    this.dpsConfig = () => dpsConfigOf(def, this.credentials ?? {});
  }

  RED.nodes.registerType<DpsConfigNode, DpsNodeDef, unknown, DpsCredentials>(
    "provisio-azure-dps",
    AzureIotDpsNode,
    {
      credentials: { caPem: { type: "text" } },
    },
  );
};
