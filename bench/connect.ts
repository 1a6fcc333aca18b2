// Start-to-connected with a symmetric key: DPS registration (MQTT) and the hub connection (AMQP) with its twin
// GET, by a new DeviceSession and by the unmodified SDK clients doing the same steps by hand.
import { randomBytes } from "node:crypto";
import { Client } from "azure-iot-device";
import { Amqp as HubAmqp } from "azure-iot-device-amqp";
import { MqttBase } from "azure-iot-mqtt-base";
import { ProvisioningDeviceClient, type RegistrationResult } from "azure-iot-provisioning-device";
import { Mqtt as DpsMqtt } from "azure-iot-provisioning-device-mqtt";
import { SymmetricKeySecurityClient } from "azure-iot-security-symmetric-key";
import { DeviceSession } from "../src/device/index.js";
import type { BenchWorld } from "./telemetry.js";

let enrolled = 0;

function enroll(world: BenchWorld): { registrationId: string; key: string } {
  enrolled += 1;
  const registrationId = `bench-connect-${process.pid}-${enrolled}`;
  const key = randomBytes(32).toString("base64");
  world.emulator.dps.store.putIndividualEnrollment({
    registrationId,
    attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
  });
  return { registrationId, key };
}

/** Milliseconds from `new DeviceSession` to its `connected` state (twin GET included). */
export async function sessionStartToConnected(world: BenchWorld): Promise<number> {
  const { registrationId, key } = enroll(world);
  const started = performance.now();
  const session = new DeviceSession({
    dps: {
      globalEndpoint: world.emulator.endpoints.dps.mqtt,
      idScope: world.emulator.idScope,
      transport: "mqtt",
      ca: world.emulator.caPem,
    },
    attestation: { kind: "symmetricKey", registrationId, key },
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
}

/** The same with the SDK by hand: register, open the hub client, GET the twin. */
export async function rawStartToConnected(world: BenchWorld): Promise<number> {
  const { registrationId, key } = enroll(world);
  const started = performance.now();
  const mqttBase = new MqttBase();
  mqttBase.setOptions({ ca: world.emulator.caPem });
  const provisioning = ProvisioningDeviceClient.create(
    world.emulator.endpoints.dps.mqtt,
    world.emulator.idScope,
    new DpsMqtt(mqttBase),
    new SymmetricKeySecurityClient(registrationId, key) as never,
  );
  const result = await new Promise<RegistrationResult>((resolve, reject) => {
    void provisioning.register((error?: Error, registered?: RegistrationResult) => {
      if (error || !registered) reject(error ?? new Error("no registration result"));
      else resolve(registered);
    });
  });
  const client = Client.fromConnectionString(
    `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${key}`,
    HubAmqp,
  );
  await client.setOptions({ ca: world.emulator.caPem });
  await client.open();
  await client.getTwin();
  const took = performance.now() - started;
  await client.close();
  return took;
}
