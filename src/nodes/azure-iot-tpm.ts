// TPM configuration node: where the TPM is. Also serves the editor's "Read TPM identity" button.
import type { Request, Response } from "express";
import type { NodeAPI } from "node-red";
import type { TpmConnectionSpec } from "../tpm/index.js";
import {
  connectionSpecOf,
  readTpmIdentity,
  type TpmConfigNode,
  type TpmNodeDef,
} from "./shared/tpm-config.js";
import { errorText, localized } from "./shared/messages.js";

/** The editor sends the fields as typed: resolve "${VAR}" the way the runtime does for deployed nodes. */
function withEnvironment(fields: Record<string, unknown>): Record<string, unknown> {
  const resolved: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    const match = typeof value === "string" ? /^\$\{(\S+)\}$/.exec(value) : null;
    resolved[name] = match?.[1] !== undefined ? (process.env[match[1]] ?? value) : value;
  }
  return resolved;
}

export = function register(RED: NodeAPI): void {
  function AzureIotTpmNode(this: TpmConfigNode, def: TpmNodeDef): void {
    RED.nodes.createNode(this, def);
    this.connectionSpec = () => connectionSpecOf(def);
  }

  RED.nodes.registerType("provisio-azure-tpm", AzureIotTpmNode);

  RED.httpAdmin.post(
    "/provisio-azure-tpm/identity",
    RED.auth.needsPermission("provisio-azure-tpm.read"),
    (req: Request, res: Response) => {
      let spec: TpmConnectionSpec;
      try {
        spec = connectionSpecOf(withEnvironment((req.body ?? {}) as Record<string, unknown>));
      } catch (error) {
        res.status(400).json({ message: localized(RED, error as Error).message });
        return;
      }
      readTpmIdentity(spec).then(
        (identity) => res.json(identity),
        (error: unknown) => {
          RED.log.warn(
            `provisio-azure-tpm: ${errorText(RED, "readIdentity", { reason: (error as Error).message })}`,
          );
          res.status(502).json({ message: (error as Error).message });
        },
      );
    },
  );
};
