// Library API for plain scripts (no Node-RED needed).
export * from "./tpm/index.js";
export {
  startSwtpm,
  type SwtpmInstance,
  type SwtpmOptions,
  SwtpmNotInstalledError,
} from "./swtpm/launcher.js";
