// The Azure IoT SDK's own TPM client (azure-iot-security-tpm on tss.js), pointed at an swtpm instance.
// It is the oracle our TpmSecurityClient must agree with. tss.js's own TCP device crashes the process on
// socket errors and cannot talk to swtpm's data port, so the bytes travel through a small device adapter;
// every TPM command is still built and parsed by tss.js.
// Both packages live in test/oracle/node_modules, installed by scripts/install-tpm-oracle.sh with install
// scripts disabled (tss.js depends on ffi-napi, a native build the oracle never uses), so they are loaded
// from there and typed here by the few members the tests use.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { SwtpmTransport } from "../../src/tpm/transport/swtpm.js";

type NodeCallback<T> = (error: Error | null, value?: T) => void;

interface SdkTpmSecurityClient {
  getEndorsementKey(callback: NodeCallback<Buffer>): void;
  getStorageRootKey(callback: NodeCallback<Buffer>): void;
  getRegistrationId(callback: NodeCallback<string>): void;
  activateIdentityKey(blob: Buffer, callback: NodeCallback<void>): void;
  signWithIdentity(data: Buffer, callback: NodeCallback<Buffer>): void;
}

/** tss.js's TPM object, by the members the tests use. */
export interface TssTpm {
  connect(continuation: () => void): void;
  GetCapability(
    capability: number,
    property: number,
    count: number,
    callback: (error: Error | null, response?: { capabilityData: unknown }) => void,
  ): void;
}

interface OraclePackages {
  TpmSecurityClient: new (registrationId: string | undefined, tpm: object) => SdkTpmSecurityClient;
  Tpm: new (useSimulator: boolean) => TssTpm;
  TPM_CAP: Record<string, number>;
}

const oracleFolder = join(__dirname, "..", "oracle");

function loadOraclePackages(): OraclePackages {
  if (!existsSync(join(oracleFolder, "node_modules", "azure-iot-security-tpm"))) {
    throw new Error(
      "the SDK's TPM client is not installed: run `bash scripts/install-tpm-oracle.sh` (npm test does)",
    );
  }
  const requireFromOracle = createRequire(join(oracleFolder, "package.json"));
  const sdk = requireFromOracle("azure-iot-security-tpm") as Pick<OraclePackages, "TpmSecurityClient">;
  const tss = requireFromOracle("tss.js") as Pick<OraclePackages, "Tpm" | "TPM_CAP">;
  return { TpmSecurityClient: sdk.TpmSecurityClient, Tpm: tss.Tpm, TPM_CAP: tss.TPM_CAP };
}

/** tss.js's TPM_CAP constants (its own, to ask it in its own terms). */
export function tssCapabilities(): Record<string, number> {
  return loadOraclePackages().TPM_CAP;
}

type Continuation = (error: Error | null, response?: Buffer) => void;

const STARTUP_CLEAR = Buffer.from("80010000000c000001440000", "hex");

class SwtpmDeviceForTss {
  private transport: SwtpmTransport | undefined;

  constructor(private readonly connection: { host: string; port: number; ctrlPort: number }) {}

  connect(continuation: (error: Error | null) => void): null {
    const { host, port, ctrlPort } = this.connection;
    SwtpmTransport.open(host, port, ctrlPort, 10_000)
      .then(async (transport) => {
        this.transport = transport;
        await transport.transmit(STARTUP_CLEAR, 10_000);
      })
      .then(
        () => setImmediate(continuation, null),
        (error: Error) => setImmediate(continuation, error),
      );
    return null;
  }

  dispatchCommand(command: Buffer, continuation: Continuation): void {
    if (!this.transport) return void setImmediate(continuation, new Error("not connected"));
    this.transport.transmit(Buffer.from(command), 10_000).then(
      (response) => setImmediate(continuation, null, response),
      (error: Error) => setImmediate(continuation, error),
    );
  }

  close(): void {
    void this.transport?.close();
    this.transport = undefined;
  }
}

export interface SdkTpmOracle {
  client: SdkTpmSecurityClient;
  /** tss.js's TPM object itself, for commands the SDK client does not wrap (GetCapability). */
  tpm: TssTpm;
  /** Connects tss.js's TPM (the SDK client does this itself on its first call). */
  connect(): Promise<void>;
  getEndorsementKey(): Promise<Buffer>;
  getStorageRootKey(): Promise<Buffer>;
  getRegistrationId(): Promise<string>;
  activateIdentityKey(blob: Buffer): Promise<void>;
  signWithIdentity(data: Buffer): Promise<Buffer>;
  close(): void;
}

export function sdkTpmOracle(connection: { host: string; port: number; ctrlPort: number }): SdkTpmOracle {
  const { Tpm, TpmSecurityClient } = loadOraclePackages();
  const tpm = new Tpm(false);
  const device = new SwtpmDeviceForTss(connection);
  (tpm as { device?: SwtpmDeviceForTss }).device = device;
  const client = new TpmSecurityClient(undefined, tpm);
  const promisify =
    <T>(call: (cb: (err: Error | null, value?: T) => void) => void) =>
    () =>
      new Promise<T>((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value as T))));
  return {
    client,
    tpm,
    connect: () => new Promise<void>((resolve) => tpm.connect(() => resolve())),
    getEndorsementKey: promisify<Buffer>((cb) => client.getEndorsementKey(cb)),
    getStorageRootKey: promisify<Buffer>((cb) => client.getStorageRootKey(cb)),
    getRegistrationId: promisify<string>((cb) => client.getRegistrationId(cb)),
    activateIdentityKey: (blob) => promisify<void>((cb) => client.activateIdentityKey(blob, cb))(),
    signWithIdentity: (data) => promisify<Buffer>((cb) => client.signWithIdentity(data, cb))(),
    close: () => device.close(),
  };
}
