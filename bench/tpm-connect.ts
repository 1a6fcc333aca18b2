// Start-to-connected with TPM attestation on swtpm: DPS registration (AMQP, the TPM challenge) and the hub
// connection with its twin GET, by a new DeviceSession (our TPM client) and by a script of unmodified SDK
// clients (azure-iot-provisioning-device with the SDK's own TPM client, azure-iot-security-tpm on tss.js, then
// azure-iot-device with the SDK's TpmAuthenticationProvider). Each measurement gets a fresh swtpm and
// enrollment; starting swtpm is not timed.
import { createRequire } from "node:module";
import { join } from "node:path";
import { Client } from "azure-iot-device";
import { Amqp as HubAmqp } from "azure-iot-device-amqp";
import { Amqp as AmqpBase } from "azure-iot-amqp-base";
import { ProvisioningDeviceClient, type RegistrationResult } from "azure-iot-provisioning-device";
import { Amqp as DpsAmqp } from "azure-iot-provisioning-device-amqp";
import { DeviceSession } from "../src/device/index.js";
import { TpmSecurityClient } from "../src/tpm/index.js";
import { sdkTpmOracle } from "../test/support/sdk-tpm-oracle.js";
import { startTestTpm, type TestTpm } from "../test/support/swtpm.js";
import type { BenchWorld } from "./telemetry.js";

/** A fresh swtpm whose endorsement key is enrolled in the emulator's DPS. */
async function enrolledTpm(world: BenchWorld): Promise<TestTpm> {
  const tpm = await startTestTpm();
  const reader = new TpmSecurityClient(tpm.connection);
  const endorsementKey = (await reader.getEndorsementKey()).toString("base64");
  const registrationId = await reader.getRegistrationId();
  await reader.close();
  world.emulator.dps.store.putIndividualEnrollment({
    registrationId,
    attestation: { type: "tpm", tpm: { endorsementKey } },
  });
  return tpm;
}

/** Milliseconds from `new DeviceSession` (TPM on swtpm) to its `connected` state (twin GET included). */
export async function sessionTpmStartToConnected(world: BenchWorld): Promise<number> {
  const tpm = await enrolledTpm(world);
  try {
    const started = performance.now();
    const session = new DeviceSession({
      dps: {
        globalEndpoint: world.emulator.endpoints.dps.amqp,
        idScope: world.emulator.idScope,
        transport: "amqp",
        ca: world.emulator.caPem,
      },
      attestation: { kind: "tpm", connection: tpm.connection },
    });
    await new Promise<void>((resolve) => {
      session.on("state", (event) => {
        if (event.state === "connected") resolve();
      });
      session.start();
    });
    const took = performance.now() - started;
    await session.close();
    return took;
  } finally {
    await tpm.dispose();
  }
}

type AuthenticationProviderClass = {
  fromTpmSecurityClient(
    deviceId: string,
    hub: string,
    client: object,
  ): Parameters<typeof Client.fromAuthenticationProvider>[0];
};

/** The SDK's TpmAuthenticationProvider, from where the oracle is installed (scripts/install-tpm-oracle.sh). */
function sdkTpmAuthenticationProvider(): AuthenticationProviderClass {
  const requireFromOracle = createRequire(join(__dirname, "..", "test", "oracle", "package.json"));
  return (
    requireFromOracle("azure-iot-security-tpm") as { TpmAuthenticationProvider: AuthenticationProviderClass }
  ).TpmAuthenticationProvider;
}

/** The SDK's AMQP base trusting the emulator's CA, the way a script would hand the SDK a private CA. */
function trustingAmqpBase(ca: string): AmqpBase {
  class TrustingAmqpBase extends AmqpBase {
    override connect(
      config: Parameters<AmqpBase["connect"]>[0],
      done: Parameters<AmqpBase["connect"]>[1],
    ): void {
      config.sslOptions = { ...(config.sslOptions as Record<string, unknown> | undefined), ca };
      super.connect(config, done);
    }
  }
  return new TrustingAmqpBase(true);
}

/** The same with the SDK by hand: its TPM client registers, its TPM provider signs the hub token, twin GET. */
export async function rawTpmStartToConnected(world: BenchWorld): Promise<number> {
  const tpm = await enrolledTpm(world);
  const sdkTpm = sdkTpmOracle(tpm.connection);
  const TpmAuthenticationProvider = sdkTpmAuthenticationProvider();
  try {
    const started = performance.now();
    const provisioning = ProvisioningDeviceClient.create(
      world.emulator.endpoints.dps.amqp,
      world.emulator.idScope,
      new DpsAmqp(trustingAmqpBase(world.emulator.caPem) as never),
      sdkTpm.client as never,
    );
    const result = await new Promise<RegistrationResult>((resolve, reject) => {
      void provisioning.register((error?: Error, registered?: RegistrationResult) => {
        if (error || !registered) reject(error ?? new Error("no registration result"));
        else resolve(registered);
      });
    });
    // The SDK's TPM registration answers with the whole DPS response, the registration state inside it.
    const state = (result as { registrationState?: RegistrationResult }).registrationState ?? result;
    const client = Client.fromAuthenticationProvider(
      TpmAuthenticationProvider.fromTpmSecurityClient(state.deviceId, state.assignedHub, sdkTpm.client),
      HubAmqp,
    );
    await client.setOptions({ ca: world.emulator.caPem });
    await client.open();
    await client.getTwin();
    const took = performance.now() - started;
    await client.close();
    return took;
  } finally {
    sdkTpm.close();
    await tpm.dispose();
  }
}
