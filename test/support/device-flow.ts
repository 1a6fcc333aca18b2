// The flow most node tests and the Node-RED bench start from: a device config node, a provision node wired to
// "states", and optionally a telemetry node wired to "sent" and a Catch node wired to "caught" ("helper" nodes
// of the Node-RED test helper); with the emulator's DPS over AMQP and a symmetric key as the common case.
import type { Emulator } from "../../src/emulator/index.js";
import type { FlowNode } from "./node-red.js";

export interface FlowAroundOptions {
  /** A telemetry node wired to "sent". Default true. */
  telemetry?: boolean;
  /** A Catch node (all nodes) wired to "caught". Default true. */
  catcher?: boolean;
  /** More nodes on the tab. */
  extra?: FlowNode[];
}

/** The DPS config node for the emulator's AMQP endpoint; its CA goes in the credentials as `caPem`. */
export function dpsConfigNode(emulator: Pick<Emulator, "endpoints" | "idScope">): FlowNode {
  return {
    id: "dps-config",
    type: "provisio-azure-dps",
    globalEndpoint: emulator.endpoints.dps.amqp,
    idScope: emulator.idScope,
    transport: "amqp",
    caSource: "text",
  };
}

/** A tab with `device` (a device config node) and the provision, telemetry and Catch nodes around it. */
export function flowAround(device: FlowNode, options: FlowAroundOptions = {}): FlowNode[] {
  const flow: FlowNode[] = [
    { id: "tab", type: "tab" },
    device,
    {
      id: "provision",
      type: "provisio-azure-provision",
      z: "tab",
      device: device.id,
      connectOnDeploy: true,
      wires: [["states"]],
    },
    { id: "states", type: "helper", z: "tab" },
  ];
  if (options.telemetry ?? true) {
    flow.push(
      { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: device.id, wires: [["sent"]] },
      { id: "sent", type: "helper", z: "tab" },
    );
  }
  if (options.catcher ?? true) {
    flow.push(
      { id: "catcher", type: "catch", z: "tab", scope: null, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "tab" },
    );
  }
  flow.push(...(options.extra ?? []));
  return flow;
}

export interface DeviceFlowOptions extends FlowAroundOptions {
  registrationId: string;
  /** The device's symmetric key (a credential). */
  key: string;
  /** Settings of the device config node beyond DPS and identity (they override the defaults too). */
  device?: Record<string, unknown>;
}

/** A symmetric-key device provisioned through the emulator's DPS, with the credentials to load it with. */
export function symmetricKeyDeviceFlow(
  emulator: Pick<Emulator, "endpoints" | "idScope" | "caPem">,
  options: DeviceFlowOptions,
): { flow: FlowNode[]; credentials: Record<string, Record<string, string>> } {
  const device: FlowNode = {
    id: "device",
    type: "provisio-azure-device",
    dps: "dps-config",
    attestation: "symmetricKey",
    registrationId: options.registrationId,
    ...options.device,
  };
  return {
    flow: [...flowAround(device, options), dpsConfigNode(emulator)],
    credentials: { "dps-config": { caPem: emulator.caPem }, device: { symmetricKey: options.key } },
  };
}

/** A DPS config node on an address nobody answers: a session over it retries in the background, unseen. */
export function unreachableDpsNode(): FlowNode {
  return {
    id: "dps",
    type: "provisio-azure-dps",
    globalEndpoint: "127.0.0.1:1",
    idScope: "0ne00000001",
    transport: "amqp",
    caSource: "none",
  };
}

/**
 * A telemetry node (output to "out", Catch to "caught") on a symmetric-key device (`device` adds settings) whose
 * DPS never answers: for tests of the node itself, which replace the session's send.
 */
export function offlineTelemetryFlow(device: Record<string, unknown> = {}): {
  flow: FlowNode[];
  credentials: Record<string, Record<string, string>>;
} {
  return {
    flow: [
      { id: "tab", type: "tab" },
      unreachableDpsNode(),
      {
        id: "device",
        type: "provisio-azure-device",
        dps: "dps",
        attestation: "symmetricKey",
        registrationId: "dev-1",
        ...device,
      },
      { id: "telemetry", type: "provisio-azure-telemetry", z: "tab", device: "device", wires: [["out"]] },
      { id: "out", type: "helper", z: "tab" },
      { id: "catcher", type: "catch", z: "tab", scope: null, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "tab" },
    ],
    credentials: { device: { symmetricKey: Buffer.alloc(32, 1).toString("base64") } },
  };
}
