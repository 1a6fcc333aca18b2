#!/usr/bin/env node
// azure-iot-local: runs the local DPS + IoT Hub emulator until SIGINT/SIGTERM. When everything listens it
// prints ONE JSON line on stdout (CA file, ID scope, endpoints, service connection strings, service API URL,
// web page URL with its access token) so that scripts and tests can read it; everything else goes to stderr.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { startEmulator, type Emulator } from "./emulator.js";

const USAGE = `usage: azure-iot-local --data-dir DIR [--host 127.0.0.1] [--amqp-port N] [--https-port N]
                       [--mqtt-port N] [--hub-host ADDRESS] [--hub-port N] [--hub-mqtt-port N]
                       [--hub-https-port N] [--web-port N] [--hub-host-name NAME] [--ui-port N]
                       [--enrollments FILE] [--verbose]
  Ports default to 0 (any free port). The emulator listens on loopback unless --host says otherwise;
  the web page (--ui-port) always listens on 127.0.0.1: open the "ui" URL of the ready line.
  Azure's layout, for clients that only dial default ports (run as root for 443):
    --host 127.0.0.1 --amqp-port 5671 --mqtt-port 8883 --https-port 443 --web-port 443 --hub-host 127.0.0.2
  puts DPS (device API) and the service API on 127.0.0.1:443, and the hub on 127.0.0.2 with its default ports
  (AMQP 5671, MQTT 8883, HTTPS 443 shared with the service API), so DPS assigns the plain host name "127.0.0.2".`;

export class CliUsageError extends Error {
  override readonly name = "CliUsageError";
}

export interface CliOptions {
  dataDir: string;
  host: string;
  amqpPort: number;
  httpsPort: number;
  mqttPort: number;
  hubPort: number;
  hubMqttPort: number;
  hubHttpsPort: number;
  webPort: number;
  uiPort: number;
  hubHostName?: string;
  hubHost?: string;
  enrollmentsFile?: string;
  verbose: boolean;
}

function port(value: string | undefined, flag: string): number {
  if (value === undefined) return 0;
  if (!/^\d+$/.test(value) || Number(value) > 65535)
    throw new CliUsageError(`${flag} must be a port number (0-65535)`);
  return Number(value);
}

export function parseCliArguments(argv: string[]): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        "data-dir": { type: "string" },
        host: { type: "string" },
        "amqp-port": { type: "string" },
        "https-port": { type: "string" },
        "mqtt-port": { type: "string" },
        "hub-port": { type: "string" },
        "hub-mqtt-port": { type: "string" },
        "hub-https-port": { type: "string" },
        "web-port": { type: "string" },
        "ui-port": { type: "string" },
        "hub-host-name": { type: "string" },
        "hub-host": { type: "string" },
        enrollments: { type: "string" },
        verbose: { type: "boolean" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }
  if (values.help) throw new CliUsageError("help");
  const dataDir = values["data-dir"];
  if (!dataDir) throw new CliUsageError("--data-dir is required");
  return {
    dataDir: resolve(dataDir),
    host: values.host ?? "127.0.0.1",
    amqpPort: port(values["amqp-port"], "--amqp-port"),
    httpsPort: port(values["https-port"], "--https-port"),
    mqttPort: port(values["mqtt-port"], "--mqtt-port"),
    hubPort: port(values["hub-port"], "--hub-port"),
    hubMqttPort: port(values["hub-mqtt-port"], "--hub-mqtt-port"),
    hubHttpsPort: port(values["hub-https-port"], "--hub-https-port"),
    webPort: port(values["web-port"], "--web-port"),
    uiPort: port(values["ui-port"], "--ui-port"),
    ...(values["hub-host-name"] ? { hubHostName: values["hub-host-name"] } : {}),
    ...(values["hub-host"] ? { hubHost: values["hub-host"] } : {}),
    ...(values.enrollments ? { enrollmentsFile: resolve(values.enrollments) } : {}),
    verbose: values.verbose ?? false,
  };
}

/** The one line printed when the emulator is ready. */
export function readyLine(emulator: Emulator): string {
  return JSON.stringify({
    ca: emulator.caFile,
    idScope: emulator.idScope,
    dps: emulator.endpoints.dps,
    hub: emulator.endpoints.hub,
    connectionStrings: emulator.connectionStrings,
    web: emulator.endpoints.web,
    ui: emulator.ui.url,
  });
}

export async function main(argv: string[]): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArguments(argv);
  } catch (error) {
    const message = (error as Error).message;
    process.stderr.write(message === "help" ? `${USAGE}\n` : `azure-iot-local: ${message}\n${USAGE}\n`);
    return message === "help" ? 0 : 2;
  }
  const log = (line: string) => process.stderr.write(`azure-iot-local: ${line}\n`);
  let emulator: Emulator;
  try {
    emulator = await startEmulator({
      dataDir: options.dataDir,
      host: options.host,
      amqpPort: options.amqpPort,
      httpsPort: options.httpsPort,
      mqttPort: options.mqttPort,
      hubPort: options.hubPort,
      hubMqttPort: options.hubMqttPort,
      hubHttpsPort: options.hubHttpsPort,
      webPort: options.webPort,
      uiPort: options.uiPort,
      ...(options.hubHostName ? { hubHostName: options.hubHostName } : {}),
      ...(options.hubHost ? { hubHost: options.hubHost } : {}),
      ...(options.enrollmentsFile ? { enrollmentsFile: options.enrollmentsFile } : {}),
      ...(options.verbose
        ? { log }
        : { log: (line: string) => (line.startsWith("created") ? log(line) : undefined) }),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    log(
      `cannot start: ${(error as Error).message}${code === "EACCES" ? " (a port below 1024 needs root)" : ""}`,
    );
    return 1;
  }
  return new Promise<number>((done) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      log(`${signal}: closing`);
      emulator.close().then(
        () => done(0),
        () => done(1),
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    // The handlers come first: whoever waits for the ready line may signal as soon as it reads it.
    process.stdout.write(`${readyLine(emulator)}\n`);
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`azure-iot-local: ${(error as Error)?.message ?? "failed"}\n`);
      process.exitCode = 1;
    },
  );
}
