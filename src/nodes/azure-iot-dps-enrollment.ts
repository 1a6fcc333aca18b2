// dps enrollment: creates, updates, reads, deletes or lists individual enrollments in DPS; an array in
// msg.payload goes through DPS's bulk operation. The answer carries what DPS returned (msg.payload, msg.dps).
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import {
  batchSizeOf,
  DpsServiceError,
  operationOf,
  OPERATIONS,
  runOperation,
  type BulkReport,
  type EnrollmentOperation,
  type OperationOutcome,
} from "../enrollment/index.js";
import type { DpsServiceConfigNode } from "./shared/dps-service-config.js";
import { catalogOf } from "./shared/node-messages.js";

interface EnrollmentNodeDef extends NodeDef {
  service: string;
  /** "topic": msg.topic chooses (empty = enroll); otherwise a fixed operation. */
  operation: "topic" | EnrollmentOperation;
  batchSize: string | number;
}

type EnrollmentMessage = NodeMessageInFlow & { force?: unknown; dps?: Record<string, unknown> };

export = function register(RED: NodeAPI): void {
  const t = catalogOf(RED, "provisio-azure-dps-enrollment");

  function DpsEnrollmentNode(this: Node, def: EnrollmentNodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const service = def.service ? (RED.nodes.getNode(def.service) as DpsServiceConfigNode | null) : null;
    const pending = new Set<Promise<unknown>>();
    if (!service) node.status({ fill: "red", shape: "ring", text: t("status.noService") });

    function statusOf(outcome: OperationOutcome): void {
      const dps = outcome.dps;
      if (dps.bulk) {
        const report = outcome.payload as BulkReport;
        node.status({
          fill: report.isSuccessful ? "green" : report.succeeded.length > 0 ? "yellow" : "red",
          shape: "dot",
          text: t(`status.bulk.${String(dps.operation)}`, {
            ok: report.succeeded.length,
            total: report.total,
          }),
        });
        return;
      }
      const text =
        dps.operation === "query"
          ? t("status.listed", { count: Number(dps.count) })
          : t(`status.${String(dps.action ?? dps.operation)}`, {
              id: typeof dps.registrationId === "string" ? dps.registrationId : "",
            });
      node.status({ fill: "green", shape: "dot", text });
    }

    node.on("input", (msg: EnrollmentMessage, send, done) => {
      if (!service) return done(new Error("no DPS service configuration selected"));
      let operation: EnrollmentOperation;
      let batchSize: number;
      let client;
      try {
        operation = def.operation && def.operation !== "topic" ? def.operation : operationOf(msg.topic);
        if (!OPERATIONS.includes(operation)) throw new Error(`unknown operation "${String(operation)}"`);
        batchSize = batchSizeOf(def.batchSize);
        client = service.serviceClient();
      } catch (error) {
        node.status({ fill: "red", shape: "dot", text: t("status.error") });
        return done(error as Error);
      }
      node.status({ fill: "blue", shape: "ring", text: t(`status.working.${operation}`) });
      const continuationToken =
        operation === "query" && typeof msg.dps?.continuationToken === "string"
          ? msg.dps.continuationToken
          : undefined;
      const work = runOperation(client, {
        operation,
        payload: msg.payload,
        force: msg.force === true,
        batchSize,
        ...(continuationToken ? { continuationToken } : {}),
      }).then(
        (outcome) => {
          msg.payload = outcome.payload;
          msg.dps = outcome.dps;
          statusOf(outcome);
          send(msg);
          done(outcome.partialFailure);
        },
        (error: unknown) => {
          const failure = error instanceof Error ? error : new Error(String(error));
          msg.dps = {
            operation,
            error: {
              message: failure.message,
              ...(failure instanceof DpsServiceError
                ? { kind: failure.kind, status: failure.status, errorCode: failure.errorCode }
                : {}),
            },
          };
          node.status({ fill: "red", shape: "dot", text: t("status.error") });
          done(failure);
        },
      );
      pending.add(work);
      void work.finally(() => pending.delete(work));
    });

    // Let answers in flight arrive (each call has a deadline) before the flow stops.
    node.on("close", (done: () => void) => {
      Promise.allSettled([...pending]).then(() => done(), done);
    });
  }

  RED.nodes.registerType("provisio-azure-dps-enrollment", DpsEnrollmentNode);
};
