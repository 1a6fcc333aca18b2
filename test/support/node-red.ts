// Loads our Node-RED nodes (from source) into node-red-node-test-helper, with core's Catch node.
import helper from "node-red-node-test-helper";
import type { Node } from "node-red";
import dpsNode from "../../src/nodes/azure-iot-dps.js";
import tpmNode from "../../src/nodes/azure-iot-tpm.js";
import deviceNode from "../../src/nodes/azure-iot-device.js";
import provisionNode from "../../src/nodes/azure-iot-provision.js";
import telemetryNode from "../../src/nodes/azure-iot-telemetry.js";
import twinInNode from "../../src/nodes/azure-iot-twin-in.js";
import twinReportNode from "../../src/nodes/azure-iot-twin-report.js";
import methodNode from "../../src/nodes/azure-iot-method.js";
import methodResponseNode from "../../src/nodes/azure-iot-method-response.js";
import c2dInNode from "../../src/nodes/azure-iot-c2d-in.js";
import { requireFromNodeRed } from "./node-red-install.js";

const catchNode = requireFromNodeRed("@node-red/nodes/core/common/25-catch.js") as unknown;

helper.init(requireFromNodeRed.resolve("node-red"));

export const allNodes = [
  dpsNode,
  tpmNode,
  deviceNode,
  provisionNode,
  telemetryNode,
  twinInNode,
  twinReportNode,
  methodNode,
  methodResponseNode,
  c2dInNode,
  catchNode,
] as unknown as Parameters<typeof helper.load>[0];

export { helper };

export function startServer(): Promise<void> {
  return new Promise((resolve) => helper.startServer(() => resolve()));
}

export async function stopServer(): Promise<void> {
  await helper.unload();
  await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
}

export type FlowNode = Record<string, unknown> & { id: string; type: string };

export async function loadFlow(
  flow: FlowNode[],
  credentials: Record<string, Record<string, string>> = {},
): Promise<void> {
  await helper.load(allNodes, flow, credentials);
}

export function getNode(id: string): Node {
  return helper.getNode(id);
}

/** The next message a helper node receives, bounded by `timeoutMs`. */
export function nextMessage<T = Record<string, unknown>>(id: string, timeoutMs = 10_000): Promise<T> {
  const node = getNode(id);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no message at ${id} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    node.once("input", (msg: unknown) => {
      clearTimeout(timer);
      resolve(msg as T);
    });
  });
}

/** Messages a helper node receives until `predicate` holds for one of them. */
export function messageMatching<T = Record<string, unknown>>(
  id: string,
  predicate: (msg: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const node = getNode(id);
  return new Promise((resolve, reject) => {
    const onInput = (msg: unknown): void => {
      if (!predicate(msg as T)) return;
      clearTimeout(timer);
      node.off("input", onInput);
      resolve(msg as T);
    };
    const timer = setTimeout(() => {
      node.off("input", onInput);
      reject(new Error(`no matching message at ${id} within ${timeoutMs} ms`));
    }, timeoutMs);
    node.on("input", onInput);
  });
}
