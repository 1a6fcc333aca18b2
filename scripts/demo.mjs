// The demo: swtpm + the local DPS/IoT Hub emulator + Node-RED with the end-to-end example flow.
// Run through `npm run demo` (scripts/demo.sh installs and builds first). Everything it starts stops on Ctrl+C;
// state lives in .demo/, so a second start reuses the TPM, the enrollment and the device registration.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";
import { assertPortsFree, busyPortAdvice, demoPorts, DemoPortError, variableOfPort } from "./demo-ports.mjs";
import { editorListening, watchDevice } from "./demo-watch.mjs";

const root = new URL("..", import.meta.url).pathname;
const require = createRequire(import.meta.url);
/** The built package (lib/) and its emulator entry point, loaded once the ports are known to be free. */
let library;
let emulatorLibrary;

const stateDir = join(root, ".demo");
let demoPortsByVariable;
try {
  demoPortsByVariable = demoPorts();
} catch (error) {
  process.stdout.write(`demo failed: ${error.message}\n`);
  process.exit(2);
}
const editorPort = demoPortsByVariable.DEMO_EDITOR_PORT;
const ports = {
  amqpPort: demoPortsByVariable.DEMO_DPS_AMQP_PORT,
  httpsPort: demoPortsByVariable.DEMO_DPS_HTTPS_PORT,
  mqttPort: demoPortsByVariable.DEMO_DPS_MQTT_PORT,
  hubPort: demoPortsByVariable.DEMO_HUB_PORT,
  webPort: demoPortsByVariable.DEMO_SERVICE_PORT,
  uiPort: demoPortsByVariable.DEMO_UI_PORT,
};
const INITIAL_DESIRED = { telemetryInterval: 5 };

const say = (line) => process.stdout.write(`${line}\n`);
const started = [];
let stopping = false;

async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  say("\nstopping the demo…");
  for (const stop of started.reverse()) {
    try {
      await stop();
    } catch (error) {
      say(`  (while stopping: ${error.message})`);
    }
  }
  process.exit(code);
}
process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));

async function startTpm() {
  if (process.env.DEMO_ATTESTATION === "symmetricKey") return undefined;
  try {
    const swtpm = await library.startSwtpm({ stateDir: join(stateDir, "tpm") });
    started.push(() => swtpm.stop());
    return swtpm;
  } catch (error) {
    if (error instanceof library.SwtpmNotInstalledError) {
      say(`! ${error.message}`);
      say("! The demo runs with a symmetric-key device instead of a TPM device.");
      return undefined;
    }
    throw error;
  }
}

/** The enrollment for this demo's device, created once (a second start finds it and does not touch it). */
async function ensureEnrollment(emulator, swtpm) {
  const store = emulator.dps.store;
  if (swtpm) {
    const tpm = new library.TpmSecurityClient(swtpm.connection);
    try {
      const registrationId = await tpm.getRegistrationId();
      const endorsementKey = (await tpm.getEndorsementKey()).toString("base64");
      if (!store.getIndividualEnrollment(registrationId)) {
        store.putIndividualEnrollment({
          registrationId,
          attestation: { type: "tpm", tpm: { endorsementKey } },
          initialTwin: { properties: { desired: INITIAL_DESIRED } },
        });
        say(`  enrolled the TPM device ${registrationId}`);
      }
      return { registrationId };
    } finally {
      await tpm.close();
    }
  }
  const keyFile = join(stateDir, "symmetric-key-device.json");
  if (!existsSync(keyFile)) {
    writeFileSync(
      keyFile,
      JSON.stringify({ registrationId: "demo-gateway", key: randomBytes(32).toString("base64") }),
      {
        mode: 0o600,
      },
    );
  }
  const device = JSON.parse(readFileSync(keyFile, "utf8"));
  if (!store.getIndividualEnrollment(device.registrationId)) {
    store.putIndividualEnrollment({
      registrationId: device.registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: device.key } },
      initialTwin: { properties: { desired: INITIAL_DESIRED } },
    });
  }
  return device;
}

/** Node-RED's user folder: settings (loopback, no outside requests) and, on first start, the demo flow. */
function prepareNodeRed(device) {
  const userDir = join(stateDir, "node-red");
  mkdirSync(userDir, { recursive: true });
  writeFileSync(
    join(userDir, "settings.js"),
    `// Written by scripts/demo.mjs on every start.
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: ${editorPort},
  flowFile: "flows.json",
  credentialSecret: false,
  nodesDir: [${JSON.stringify(root)}],
  logging: { console: { level: "warn", metrics: false, audit: false } },
  editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } },
  telemetry: { enabled: false },
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
};
`,
  );
  const flowFile = join(userDir, "flows.json");
  // A TPM demo and a symmetric-key demo need different device nodes: lay the flow out again on a switch.
  const modeFile = join(userDir, "attestation");
  const mode = device.key ? "symmetricKey" : "tpm";
  const previousMode = existsSync(modeFile) ? readFileSync(modeFile, "utf8") : undefined;
  if (!existsSync(flowFile) || previousMode !== mode) {
    writeFileSync(modeFile, mode);
    const flow = JSON.parse(readFileSync(join(root, "examples", "end-to-end demo.json"), "utf8"));
    const credentials = {};
    if (device.key) {
      const node = flow.find((n) => n.type === "provisio-azure-device");
      Object.assign(node, { attestation: "symmetricKey", registrationId: device.registrationId, tpm: "" });
      credentials[node.id] = { symmetricKey: device.key };
    }
    writeFileSync(flowFile, JSON.stringify(flow, null, 2));
    writeFileSync(join(userDir, "flows_cred.json"), JSON.stringify(credentials), { mode: 0o600 });
  }
  return userDir;
}

function startNodeRed(userDir, env) {
  const child = spawn(
    process.execPath,
    [require.resolve("node-red/red.js"), "--userDir", userDir, "--settings", join(userDir, "settings.js")],
    { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const relay = (stream) =>
    stream.on("data", (chunk) => {
      for (const line of chunk.toString().split("\n")) if (line.trim()) say(`  [node-red] ${line}`);
    });
  relay(child.stdout);
  relay(child.stderr);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  // Node-RED logs a port it cannot listen on; say which variable moves it.
  const portInUse = (chunk) => {
    if (/EADDRINUSE|\bin use\b/i.test(chunk.toString()))
      say(`! ${busyPortAdvice("DEMO_EDITOR_PORT", editorPort)}`);
  };
  child.stdout.on("data", portInUse);
  child.stderr.on("data", portInUse);
  child.once("exit", (code) => {
    if (!stopping) {
      say(`Node-RED exited (${code}).`);
      void stopAll(1);
    }
  });
  started.push(async () => {
    if (child.exitCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  });
  return child;
}

async function main() {
  await assertPortsFree(demoPortsByVariable);
  library = require(join(root, "lib", "index.js"));
  // The emulator is a separate entry point of the package (not in lib/index.js).
  emulatorLibrary = require(join(root, "lib", "emulator", "index.js"));
  mkdirSync(stateDir, { recursive: true });
  say("Azure IoT demo: swtpm + local DPS and IoT Hub + Node-RED");
  const swtpm = await startTpm();
  if (swtpm) say(`  swtpm on ${swtpm.connection.host}:${swtpm.connection.port} (state in .demo/tpm)`);

  const emulator = await emulatorLibrary.startEmulator({ dataDir: join(stateDir, "emulator"), ...ports });
  started.push(() => emulator.close());
  say(
    `  emulator: DPS ${emulator.endpoints.dps.amqp}, IoT hub ${emulator.endpoints.hub.hostName} (state in .demo/emulator)`,
  );

  const device = await ensureEnrollment(emulator, swtpm);
  const userDir = prepareNodeRed(device);
  say("  starting Node-RED…");
  const nodeRed = startNodeRed(userDir, {
    AZURE_IOT_DPS_ENDPOINT: emulator.endpoints.dps.amqp,
    AZURE_IOT_ID_SCOPE: emulator.idScope,
    AZURE_IOT_CA_FILE: emulator.caFile,
    // the "end-of-line station" examples name this variable instead of holding the key in the flow
    AZURE_IOT_DPS_SERVICE_CONNECTION_STRING: emulator.connectionStrings.dpsService,
    SWTPM_HOST: swtpm?.connection.host ?? "127.0.0.1",
    SWTPM_PORT: String(swtpm?.connection.port ?? 0),
    SWTPM_CTRL_PORT: String(swtpm?.connection.ctrlPort ?? 0),
  });

  // What `npm run demo:desired` needs to reach the twin API (local emulator only; the file is private).
  writeFileSync(
    join(stateDir, "service.json"),
    JSON.stringify({
      serviceUrl: emulator.endpoints.web,
      caFile: emulator.caFile,
      hubServiceConnectionString: emulator.connectionStrings.hubService,
      deviceId: device.registrationId,
    }),
    { mode: 0o600 },
  );
  const editorUrl = `http://127.0.0.1:${editorPort}/`;
  await editorListening(editorUrl, { exited: () => nodeRed.exitCode !== null });
  say("");
  say(`Node-RED editor:   ${editorUrl}   (tab "Azure IoT demo"; debug sidebar on the right)`);
  if (emulator.ui?.url) say(`Emulator page:     ${emulator.ui.url}`);
  say(`Device:            ${device.registrationId} (${swtpm ? "TPM attestation" : "symmetric key"})`);
  say("");
  say(
    "Change the desired property telemetryInterval (seconds) on the emulator page, or from another terminal:",
  );
  say("  npm run demo:desired -- telemetryInterval=2");
  say("");
  say(`Ctrl+C stops ${swtpm ? "swtpm, " : ""}the emulator and Node-RED.`);
  say("");
  say("What the device does:");
  started.push(
    watchDevice({ editorUrl, hubService: emulator.hub.service, deviceId: device.registrationId, say }),
  );
}

main().catch((error) => {
  if (error instanceof DemoPortError) {
    say(`demo failed: ${error.message}`);
    process.exit(1);
  }
  const variable = error.code === "EADDRINUSE" ? variableOfPort(demoPortsByVariable, error.port) : undefined;
  say(`demo failed: ${variable ? busyPortAdvice(variable, error.port) : error.message}`);
  void stopAll(1);
});
