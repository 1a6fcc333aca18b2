// Shared by the emulator-*.test.ts files: a bounded wait, and a symmetric-key device of an enrollment group
// that provisions over DPS MQTT with the unmodified device SDK and gets a hub client, trusting the
// emulator's CA explicitly.
import { Client } from "azure-iot-device";
import { Amqp as HubAmqp } from "azure-iot-device-amqp";
import { ProvisioningDeviceClient, type RegistrationResult } from "azure-iot-provisioning-device";
import { Mqtt as DpsMqtt } from "azure-iot-provisioning-device-mqtt";
import { MqttBase } from "azure-iot-mqtt-base";
import { SymmetricKeySecurityClient } from "azure-iot-security-symmetric-key";
import { deriveDeviceKey } from "../../src/emulator/dps/index.js";
import type { Emulator } from "../../src/emulator/index.js";

export const EMULATOR_WAIT_MS = 30_000;

/** Settles like `promise`, or rejects with "timed out: {what}" after EMULATOR_WAIT_MS. */
export function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), EMULATOR_WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface ProvisionedDevice {
  result: RegistrationResult;
  /** The device key derived from the group key. */
  deviceKey: string;
}

/**
 * Registers `registrationId` as a member of the symmetric-key enrollment group with `groupKey`, over the
 * emulator's DPS MQTT endpoint with the unmodified provisioning client (callback form, which its typings
 * describe best).
 */
export function provisionGroupDevice(
  emulator: Emulator,
  groupKey: string,
  registrationId: string,
): Promise<ProvisionedDevice> {
  return provisionSymmetricKeyDevice(emulator, deriveDeviceKey(groupKey, registrationId), registrationId);
}

/** Registers `registrationId` with its own symmetric key (an individual enrollment), like provisionGroupDevice. */
export async function provisionSymmetricKeyDevice(
  emulator: Emulator,
  deviceKey: string,
  registrationId: string,
): Promise<ProvisionedDevice> {
  const mqttBase = new MqttBase();
  mqttBase.setOptions({ ca: emulator.caPem });
  const provisioning = ProvisioningDeviceClient.create(
    emulator.endpoints.dps.mqtt,
    emulator.idScope,
    new DpsMqtt(mqttBase),
    new SymmetricKeySecurityClient(registrationId, deviceKey) as never,
  );
  const result = await withTimeout(
    new Promise<RegistrationResult>((resolve, reject) => {
      void provisioning.register((error?: Error, registered?: RegistrationResult) => {
        if (error || !registered) reject(error ?? new Error("no registration result"));
        else resolve(registered);
      });
    }),
    "DPS register",
  );
  return { result, deviceKey };
}

/** A hub device client (AMQP, not yet open) for a provisioned device, trusting the emulator's CA. */
export async function hubClientFor(emulator: Emulator, device: ProvisionedDevice): Promise<Client> {
  const client = Client.fromConnectionString(
    `HostName=${device.result.assignedHub};DeviceId=${device.result.deviceId};SharedAccessKey=${device.deviceKey}`,
    HubAmqp,
  );
  await client.setOptions({ ca: emulator.caPem });
  return client;
}
