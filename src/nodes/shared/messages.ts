// Runtime texts come from the device node's message catalog (nodes/locales/<lang>/azure-iot-device.json).
import type { NodeAPI } from "node-red";

export const CATALOG = "@provisio/node-red-azure-iot/azure-iot-device";

export function translate(RED: NodeAPI, key: string, params?: Record<string, string | number>): string {
  const text = RED._(`${CATALOG}:${key}`, params);
  // A missing catalog (e.g. nodes loaded from source in tests) gives the key back: show its last part.
  return text === key || text.endsWith(`:${key}`) ? (key.split(".").pop() ?? key) : text;
}
