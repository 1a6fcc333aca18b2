// Node-RED's own i18n with our message catalog registered the way the runtime does for the node set, and a
// runtime stand-in whose `_` answers in a chosen language: for tests of the adapters' texts.
import { join } from "node:path";
import type { NodeAPI } from "node-red";
import { CATALOG } from "../../src/nodes/shared/messages.js";

interface NodeRedI18n {
  init(settings: { lang?: string }): void;
  registerMessageCatalog(namespace: string, dir: string, file: string): Promise<void>;
  _(key: string, options?: Record<string, unknown>): string;
  i: { loadLanguages(languages: string[]): Promise<unknown> };
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { i18n } = require("@node-red/util") as { i18n: NodeRedI18n };

/** Registers the catalog (English first) and loads `languages` besides. */
export async function loadCatalog(languages: string[]): Promise<void> {
  i18n.init({ lang: "en-US" });
  await i18n.registerMessageCatalog(
    CATALOG,
    join(__dirname, "..", "..", "nodes", "locales"),
    "azure-iot-device.json",
  );
  await i18n.i.loadLanguages(languages);
}

/** The part of the runtime (RED) the adapters translate with, answering in `lng`. */
export function runtimeIn(lng: string): NodeAPI {
  return {
    _: (key: string, params?: Record<string, unknown>) => i18n._(key, { ...params, lng }),
  } as unknown as NodeAPI;
}
