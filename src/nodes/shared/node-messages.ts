// Runtime texts (status) of a node set come from its own message catalog, nodes/locales/<lang>/<file>.json.
import type { NodeAPI } from "node-red";

const MODULE = "@provisio/node-red-azure-iot";

/**
 * `translate(key, params)` in the catalog of a node set: its namespace is the set's name in package.json
 * ("node-red".nodes), which is the node's type, and its texts sit under the type name as well.
 */
export function catalogOf(RED: NodeAPI, type: string) {
  return (relativeKey: string, params?: Record<string, string | number>): string => {
    const key = `${type}.${relativeKey}`;
    const text = RED._(`${MODULE}/${type}:${key}`, params);
    // A missing catalog (nodes loaded from source in tests) gives the key back: show its last part.
    if (text === key || text.endsWith(`:${key}`)) {
      const last = key.split(".").pop() ?? key;
      return params ? `${last} ${Object.values(params).join(" ")}` : last;
    }
    return text;
  };
}
