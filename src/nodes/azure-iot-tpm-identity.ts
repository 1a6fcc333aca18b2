// tpm identity: on any input, reads the registration id and endorsement key of a TPM (and its manufacturer
// and firmware) for an enrollment. The TPM is the config node's, or the one msg.tpmConnection names (a
// station testing many boards through one interface). One reading at a time: TCP TPMs serve one client.
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import type { TpmConnectionSpec } from "../tpm/index.js";
import { describeConnection } from "../tpm/index.js";
import { catalogOf } from "./shared/node-messages.js";
import type { TpmConfigNode } from "./shared/tpm-config.js";
import { connectionFromMessage, describeTpmFailure, readIdentityAndInfo } from "./shared/tpm-identity.js";

interface TpmIdentityNodeDef extends NodeDef {
  tpm: string;
  timeout: string | number;
}

const DEFAULT_TIMEOUT_S = 10;

export = function register(RED: NodeAPI): void {
  const t = catalogOf(RED, "provisio-azure-tpm-identity");

  function TpmIdentityNode(this: Node, def: TpmIdentityNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const tpmNode = def.tpm ? (RED.nodes.getNode(def.tpm) as TpmConfigNode | null) : null;
    const seconds = Number(def.timeout);
    const timeoutMs = (Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_TIMEOUT_S) * 1000;
    let queue: Promise<unknown> = Promise.resolve();

    node.on("input", (msg: NodeMessageInFlow & { tpmConnection?: unknown; tpm?: unknown }, send, done) => {
      let spec: TpmConnectionSpec;
      try {
        if (msg.tpmConnection !== undefined) spec = connectionFromMessage(msg.tpmConnection);
        else if (tpmNode) spec = tpmNode.connectionSpec();
        else throw new Error("no TPM configuration selected, and no msg.tpmConnection");
      } catch (error) {
        node.status({ fill: "red", shape: "dot", text: t("status.error") });
        return done(error as Error);
      }
      const reading = queue.then(() => {
        node.status({ fill: "blue", shape: "ring", text: t("status.reading") });
        return readIdentityAndInfo(spec, timeoutMs);
      });
      queue = reading.catch(() => undefined);
      reading.then(
        (identity) => {
          msg.payload = { registrationId: identity.registrationId, endorsementKey: identity.endorsementKey };
          msg.tpm = { ...identity.info, source: describeConnection(spec) };
          node.status({
            fill: "green",
            shape: "dot",
            text: t("status.read", { id: identity.registrationId }),
          });
          send(msg);
          done();
        },
        (error: unknown) => {
          node.status({ fill: "red", shape: "dot", text: t("status.error") });
          done(new Error(describeTpmFailure(error, spec, timeoutMs)));
        },
      );
    });

    node.on("close", (done: () => void) => {
      queue.then(() => done(), done);
    });
  }

  RED.nodes.registerType("provisio-azure-tpm-identity", TpmIdentityNode);
};
