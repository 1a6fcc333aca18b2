// TPM configuration node: where the TPM is. Also serves the editor's "Read TPM identity" button, to users
// who may change the flows only (it opens a device or a socket on the runtime's machine).
import type { Request, Response } from "express";
import type { NodeAPI } from "node-red";
import { connectionSpecOf, type TpmConfigNode, type TpmNodeDef } from "./shared/tpm-config.js";
import { answerIdentityRequest } from "./shared/tpm-identity-request.js";

export = function register(RED: NodeAPI): void {
  function AzureIotTpmNode(this: TpmConfigNode, def: TpmNodeDef): void {
    RED.nodes.createNode(this, def);
    this.connectionSpec = () => connectionSpecOf(def);
  }

  RED.nodes.registerType("azure-iot-tpm", AzureIotTpmNode);

  RED.httpAdmin.post(
    "/azure-iot-tpm/identity",
    RED.auth.needsPermission("azure-iot-tpm.write"),
    (req: Request, res: Response) => {
      const fields = (typeof req.body === "object" && req.body !== null ? req.body : {}) as Record<
        string,
        unknown
      >;
      answerIdentityRequest(fields, (name) => process.env[name]).then(
        (answer) => {
          if (answer.logDetail) {
            RED.log.warn(`azure-iot-tpm: reading the TPM identity failed: ${answer.logDetail}`);
          }
          res.status(answer.status).json(answer.body);
        },
        () => res.status(500).json({ message: "reading the TPM identity failed" }),
      );
    },
  );
};
