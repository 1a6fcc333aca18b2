// TPM configuration node: where the TPM is. Also serves the editor's "Read TPM identity" button, to users
// who may change the flows only (it opens a device or a socket on the runtime's machine).
import type { Request, Response } from "express";
import type { NodeAPI } from "node-red";
import { errorText, localized } from "./shared/messages.js";
import { connectionSpecOf, type TpmConfigNode, type TpmNodeDef } from "./shared/tpm-config.js";
import { answerIdentityRequest } from "./shared/tpm-identity-request.js";

export = function register(RED: NodeAPI): void {
  function AzureIotTpmNode(this: TpmConfigNode, def: TpmNodeDef): void {
    RED.nodes.createNode(this, def);
    this.connectionSpec = () => connectionSpecOf(def);
  }

  RED.nodes.registerType("provisio-azure-tpm", AzureIotTpmNode);

  RED.httpAdmin.post(
    "/provisio-azure-tpm/identity",
    RED.auth.needsPermission("provisio-azure-tpm.write"),
    (req: Request, res: Response) => {
      const fields = (typeof req.body === "object" && req.body !== null ? req.body : {}) as Record<
        string,
        unknown
      >;
      answerIdentityRequest(fields, (name) => process.env[name]).then(
        (answer) => {
          if (answer.status === 200) {
            res.json(answer.body);
            return;
          }
          const { problem } = answer;
          const message =
            "error" in problem
              ? localized(RED, problem.error).message
              : errorText(RED, problem.key, problem.params);
          if (answer.logDetail) {
            RED.log.warn(
              `provisio-azure-tpm: ${errorText(RED, "readIdentity", { reason: answer.logDetail })}`,
            );
          }
          res.status(answer.status).json({ message });
        },
        () => res.status(500).json({ message: errorText(RED, "tpmUnreadable") }),
      );
    },
  );
};
