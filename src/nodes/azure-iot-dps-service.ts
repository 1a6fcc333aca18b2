// DPS service configuration node: the connection string of a policy that may write enrollments (kept in
// credentials), where the service is, which CA to trust besides the system ones. Owns one service client.
import type { NodeAPI } from "node-red";
import { DpsServiceClient } from "../enrollment/index.js";
import {
  serviceOptionsOf,
  type DpsServiceConfigNode,
  type DpsServiceCredentials,
  type DpsServiceNodeDef,
} from "./shared/dps-service-config.js";

export = function register(RED: NodeAPI): void {
  function DpsServiceNode(this: DpsServiceConfigNode, def: DpsServiceNodeDef): void {
    RED.nodes.createNode(this, def);
    let client: DpsServiceClient | undefined;
    this.serviceClient = () =>
      (client ??= new DpsServiceClient(serviceOptionsOf(def, this.credentials ?? {})));
    this.on("close", (done: () => void) => {
      client?.close();
      client = undefined;
      done();
    });
  }

  RED.nodes.registerType<DpsServiceConfigNode, DpsServiceNodeDef, unknown, DpsServiceCredentials>(
    "provisio-azure-dps-service",
    DpsServiceNode,
    {
      credentials: { connectionString: { type: "password" }, caPem: { type: "text" } },
    },
  );
};
