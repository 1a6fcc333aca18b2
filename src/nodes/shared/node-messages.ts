// Runtime texts (status) of a node set come from its own message catalog, nodes/locales/<lang>/<file>.json.
import type { NodeAPI } from "node-red";

const MODULE = "@provisio/node-red-azure-iot";

/**
 * `translate(key, params)` for the catalog of the node file `file` (e.g. "azure-iot-dps-enrollment"), whose
 * texts sit under the node's type name (`section`, e.g. "provisio-azure-dps-enrollment").
 */
export function catalogOf(RED: NodeAPI, file: string, section: string) {
  return (relativeKey: string, params?: Record<string, string | number>): string => {
    const key = `${section}.${relativeKey}`;
    const text = RED._(`${MODULE}/${file}:${key}`, params);
    // A missing catalog (nodes loaded from source in tests) gives the key back: show its last part.
    if (text === key || text.endsWith(`:${key}`)) {
      const last = key.split(".").pop() ?? key;
      return params ? `${last} ${Object.values(params).join(" ")}` : last;
    }
    return text;
  };
}
