// Runs a script of the official service SDKs (azure-iothub, azure-iot-provisioning-service) in a child process
// against an emulator, and returns the JSON of its last stdout line. A child of its own because the SDKs take
// the emulator's CA only through NODE_EXTRA_CA_CERTS, which Node reads once at start. The script finds the
// service connection strings in DPS_CS and HUB_CS and its input (JSON) in SDK_ARG.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import type { Emulator } from "../../src/emulator/index.js";
import { withTimeout } from "./emulator-fixture.js";

const ROOT = resolve(__dirname, "../..");

export function runServiceSdk(
  script: string,
  emulator: Emulator | undefined,
  arg: unknown,
  what: string,
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ["-e", script], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      ...env,
      NODE_EXTRA_CA_CERTS: emulator?.caFile ?? "",
      SDK_ARG: JSON.stringify(arg),
      DPS_CS: emulator?.connectionStrings.dpsService ?? "",
      HUB_CS: emulator?.connectionStrings.hubService ?? "",
    },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return withTimeout(
    new Promise<Record<string, unknown>>((resolvePromise, reject) => {
      child.once("exit", () => {
        try {
          resolvePromise(JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>);
        } catch {
          reject(new Error(`no result from the SDK child (${what}); stderr: ${stderr}`));
        }
      });
    }),
    `service SDK ${what}`,
  ).finally(() => child.kill("SIGKILL"));
}
