// Allocation policies, custom allocation webhook, reprovisioning, persistence across restarts, throttling
// and malformed input, against the emulator through its real TLS listeners.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { generate } from "mqtt-packet";
import { deriveDeviceKey } from "../../src/emulator/dps/index.js";
import {
  fetchDps,
  ID_SCOPE,
  mqttConnack,
  newSymmetricKey,
  provisionOverHttps,
  register,
  sdkEndpoint,
  startTestDps,
  symmetricKeyDevice,
  symmetricKeyEnrollment,
  TRANSPORTS,
  type TestDps,
} from "./dps-fixtures.js";

const count = (hubs: string[]) =>
  hubs.reduce<Record<string, number>>((acc, h) => ({ ...acc, [h]: (acc[h] ?? 0) + 1 }), {});

describe("DPS emulator, allocation policies", () => {
  let env: TestDps;
  before(async () => {
    env = await startTestDps({
      linkedHubs: [
        { hostName: "hub-a.local", allocationWeight: 3, latencyMs: 40 },
        { hostName: "hub-b.local", allocationWeight: 1, latencyMs: 5 },
        { hostName: "hub-zero.local", allocationWeight: 0, latencyMs: 1 },
        { hostName: "hub-private.local", applyAllocationPolicy: false, latencyMs: 0 },
      ],
    });
  });
  after(async () => {
    await env.dispose();
  });

  const provisionGroup = async (groupId: string, policy: "hashed" | "geoLatency", devices: number) => {
    const groupKey = newSymmetricKey();
    env.store.putEnrollmentGroup({
      enrollmentGroupId: groupId,
      allocationPolicy: policy,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey } },
    });
    const hubs: string[] = [];
    for (let i = 0; i < devices; i++) {
      const id = `${groupId}-dev-${i}`;
      const result = await provisionOverHttps(env, id, deriveDeviceKey(groupKey, id));
      assert.equal(result.status, "assigned");
      hubs.push(result.registrationState!.assignedHub);
    }
    return { hubs, groupKey };
  };

  it("evenly weighted (hashed) allocation spreads devices by weight over the hubs that apply the policy", async () => {
    const { hubs, groupKey } = await provisionGroup("weighted", "hashed", 40);
    const perHub = count(hubs);
    assert.deepEqual(Object.keys(perHub).sort(), ["hub-a.local", "hub-b.local"]);
    assert.ok(perHub["hub-a.local"] > perHub["hub-b.local"], JSON.stringify(perHub));
    assert.ok(perHub["hub-b.local"] >= 3, JSON.stringify(perHub));
    // The same device lands on the same hub again.
    const again = await provisionOverHttps(
      env,
      "weighted-dev-7",
      deriveDeviceKey(groupKey, "weighted-dev-7"),
    );
    assert.equal(again.registrationState!.assignedHub, hubs[7]);
  });

  it("lowest latency (geoLatency) allocation picks the nearest hub that applies the policy", async () => {
    const { hubs } = await provisionGroup("nearest", "geoLatency", 5);
    assert.deepEqual(count(hubs), { "hub-b.local": 5 });
  });

  it("static allocation uses the enrollment's hub, even one that does not apply the policy", async () => {
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(
      symmetricKeyEnrollment("static-dev", key, {
        allocationPolicy: "static",
        iotHubs: ["hub-private.local"],
      }),
    );
    const result = await provisionOverHttps(env, "static-dev", key);
    assert.equal(result.registrationState!.assignedHub, "hub-private.local");
    assert.ok(env.hub.getDevice("hub-private.local", "static-dev"));
  });

  it("fails the registration when the enrollment names no linked hub", async () => {
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(
      symmetricKeyEnrollment("orphan-dev", key, { iotHubs: ["not-linked.local"] }),
    );
    const result = await provisionOverHttps(env, "orphan-dev", key);
    assert.equal(result.status, "failed");
    assert.equal(typeof result.registrationState!.errorMessage, "string");
  });
});

describe("DPS emulator, custom allocation webhook", () => {
  let env: TestDps;
  let webhook: Server;
  let webhookUrl: string;
  const requests: Record<string, unknown>[] = [];
  let answer: { status: number; body: unknown } = { status: 200, body: {} };

  before(async () => {
    env = await startTestDps({ linkedHubs: [{ hostName: "hub-a.local" }, { hostName: "hub-b.local" }] });
    webhook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        requests.push(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>);
        res.writeHead(answer.status, { "content-type": "application/json" });
        res.end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/api/allocate?code=secret`;
  });
  after(async () => {
    await env.dispose();
    await new Promise((resolve) => webhook.close(resolve));
  });

  it("sends the Azure Function request shape and applies the hub, initial twin and payload it answers", async () => {
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(
      symmetricKeyEnrollment("custom-dev", key, {
        allocationPolicy: "custom",
        customAllocationDefinition: { webhookUrl, apiVersion: "2021-10-01" },
      }),
    );
    answer = {
      status: 200,
      body: {
        iotHubHostName: "hub-b.local",
        initialTwin: { tags: { chosenBy: "webhook" } },
        payload: { welcome: "device" },
      },
    };
    const result = await register(
      sdkEndpoint(env.dps, env.pki.caCert, "mqtt"),
      symmetricKeyDevice("custom-dev", key),
      {
        firmware: "1.2.3",
      },
    );
    assert.equal(result.assignedHub, "hub-b.local");
    assert.deepEqual(result.payload, { welcome: "device" });
    assert.deepEqual(env.hub.getTwin("hub-b.local", "custom-dev")?.tags, { chosenBy: "webhook" });
    const sent = requests.at(-1) as {
      individualEnrollment: { registrationId: string; attestation: { symmetricKey?: unknown } };
      deviceRuntimeContext: { registrationId: string; payload: unknown; symmetricKey: unknown };
      linkedHubs: string[];
    };
    assert.equal(sent.individualEnrollment.registrationId, "custom-dev");
    assert.equal(sent.individualEnrollment.attestation.symmetricKey, undefined, "keys must not leave DPS");
    assert.deepEqual(sent.deviceRuntimeContext, {
      registrationId: "custom-dev",
      symmetricKey: {},
      payload: { firmware: "1.2.3" },
    });
    assert.deepEqual(sent.linkedHubs, ["hub-a.local", "hub-b.local"]);
  });

  it("reports a webhook failure as a failed registration with errorCode 400207", async () => {
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(
      symmetricKeyEnrollment("custom-fail", key, {
        allocationPolicy: "custom",
        customAllocationDefinition: { webhookUrl, apiVersion: "2021-10-01" },
      }),
    );
    answer = { status: 500, body: { error: "boom" } };
    const failure = await register(
      sdkEndpoint(env.dps, env.pki.caCert, "amqp"),
      symmetricKeyDevice("custom-fail", key),
    ).then(
      () => assert.fail("a failed allocation must fail the registration"),
      (error: Error & { result?: { registrationState?: { errorCode?: number; errorMessage?: string } } }) =>
        error,
    );
    assert.equal(failure.result?.registrationState?.errorCode, 400207);
    assert.equal(
      failure.result?.registrationState?.errorMessage,
      "Custom allocation failed with status code: 500",
    );
    assert.equal(env.hub.hubOf("custom-fail").length, 0);
  });
});

describe("DPS emulator, reprovisioning, persistence, throttling and malformed input", () => {
  let env: TestDps;
  before(async () => {
    env = await startTestDps({ linkedHubs: [{ hostName: "hub-a.local" }, { hostName: "hub-b.local" }] });
  });
  after(async () => {
    await env.dispose();
  });

  const moveToHubB = async (
    registrationId: string,
    policy: { updateHubAssignment: boolean; migrateDeviceData: boolean },
  ) => {
    const key = newSymmetricKey();
    const enrollment = symmetricKeyEnrollment(registrationId, key, {
      iotHubs: ["hub-a.local"],
      reprovisionPolicy: policy,
      initialTwin: { tags: { stage: "initial" }, properties: { desired: { mode: "factory" } } },
    });
    env.store.putIndividualEnrollment(enrollment);
    const first = await provisionOverHttps(env, registrationId, key);
    assert.equal(first.registrationState!.assignedHub, "hub-a.local");
    assert.equal(first.registrationState!.substatus, "initialAssignment");
    env.hub.setTwin("hub-a.local", registrationId, { stage: "in-service" }, { mode: "production" });
    env.store.putIndividualEnrollment({ ...enrollment, iotHubs: ["hub-b.local"] });
    const second = await provisionOverHttps(env, registrationId, key);
    return { first, second: second.registrationState! };
  };

  it("reprovision and migrate: the device moves to the new hub with its twin", async () => {
    const { first, second } = await moveToHubB("migrate-dev", {
      updateHubAssignment: true,
      migrateDeviceData: true,
    });
    assert.equal(second.assignedHub, "hub-b.local");
    assert.equal(second.substatus, "deviceDataMigrated");
    assert.equal(second.createdDateTimeUtc, first.registrationState!.createdDateTimeUtc);
    assert.deepEqual(env.hub.getTwin("hub-b.local", "migrate-dev"), {
      tags: { stage: "in-service" },
      properties: { desired: { mode: "production" } },
    });
    assert.deepEqual(env.hub.hubOf("migrate-dev"), ["hub-b.local"]);
  });

  it("reprovision and reset: the device moves to the new hub with the initial twin", async () => {
    const { second } = await moveToHubB("reset-dev", { updateHubAssignment: true, migrateDeviceData: false });
    assert.equal(second.assignedHub, "hub-b.local");
    assert.equal(second.substatus, "deviceDataReset");
    assert.deepEqual(env.hub.getTwin("hub-b.local", "reset-dev"), {
      tags: { stage: "initial" },
      properties: { desired: { mode: "factory" } },
    });
    assert.deepEqual(env.hub.hubOf("reset-dev"), ["hub-b.local"]);
  });

  it("never reprovision: the device stays on its hub with its twin", async () => {
    const { second } = await moveToHubB("stay-dev", { updateHubAssignment: false, migrateDeviceData: false });
    assert.equal(second.assignedHub, "hub-a.local");
    assert.deepEqual(env.hub.getTwin("hub-a.local", "stay-dev")?.tags, { stage: "in-service" });
    assert.deepEqual(env.hub.hubOf("stay-dev"), ["hub-a.local"]);
  });

  it("a restart keeps enrollments and registrations, and the device registers again", async () => {
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(symmetricKeyEnrollment("durable-dev", key));
    const before = await register(
      sdkEndpoint(env.dps, env.pki.caCert, "amqp"),
      symmetricKeyDevice("durable-dev", key),
    );
    await env.restart();
    assert.equal(env.store.getIndividualEnrollment("durable-dev")?.attestation.symmetricKey?.primaryKey, key);
    const state = env.store.getRegistrationState("durable-dev");
    assert.equal(state?.assignedHub, before.assignedHub);
    assert.equal(env.store.getIndividualEnrollment("durable-dev")?.registrationState?.status, "assigned");
    const after = await register(
      sdkEndpoint(env.dps, env.pki.caCert, "mqtt"),
      symmetricKeyDevice("durable-dev", key),
    );
    assert.equal(after.assignedHub, before.assignedHub);
    assert.equal(after.createdDateTimeUtc, before.createdDateTimeUtc);
    assert.equal(after.substatus, "deviceDataMigrated");
  });

  it("throttling: AMQP and MQTT devices retry after retry-after and succeed; HTTPS reports ThrottlingError", async () => {
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(symmetricKeyEnrollment("throttled-dev", key));
    for (const transport of ["amqp", "mqtt"] as const) {
      env.dps.faults.throttleNext(1);
      const result = await register(
        sdkEndpoint(env.dps, env.pki.caCert, transport),
        symmetricKeyDevice("throttled-dev", key),
      );
      assert.equal(result.status, "assigned");
    }
    env.dps.faults.throttleNext(1);
    await assert.rejects(
      register(sdkEndpoint(env.dps, env.pki.caCert, "https"), symmetricKeyDevice("throttled-dev", key)),
      (error: Error) => error.constructor.name === "ThrottlingError",
    );
    const ok = await register(
      sdkEndpoint(env.dps, env.pki.caCert, "https"),
      symmetricKeyDevice("throttled-dev", key),
    );
    assert.equal(ok.status, "assigned");
  });

  it("answers malformed HTTPS requests with Azure errors and keeps serving", async () => {
    const base = `/${ID_SCOPE}/registrations/bad-input/register`;
    const badJson = await fetchDps(env, `${base}?api-version=2019-03-31`, {
      method: "PUT",
      body: "{not json",
    });
    assert.equal(badJson.status, 400);
    assert.equal((badJson.body as { errorCode: number }).errorCode, 400004);
    assert.equal((await fetchDps(env, "/nothing/here", { method: "GET" })).status, 404);
    assert.equal(
      (
        await fetchDps(env, `/${ID_SCOPE}/registrations/%E0%A4%A/register?api-version=1`, {
          method: "PUT",
          body: "{}",
        })
      ).status,
      400,
    );
    assert.equal((await fetchDps(env, `${base}?api-version=2019-03-31`, { method: "DELETE" })).status, 405);
    assert.equal((await fetchDps(env, base, { method: "PUT", body: "{}" })).status, 400);
    const oversize = await fetchDps(env, `${base}?api-version=2019-03-31`, {
      method: "PUT",
      body: Buffer.alloc(200 * 1024, 0x41),
    }).catch((error: NodeJS.ErrnoException) => ({ status: error.code ?? error.message }));
    // 413, or the connection cut while the client was still sending (never a hang, which would time out).
    assert.ok([413, "ECONNRESET", "EPIPE"].includes(oversize.status), `oversize answered ${oversize.status}`);
  });

  it("drops malformed AMQP and MQTT connections and keeps serving devices on every transport", async () => {
    const junk = [
      { port: env.dps.ports.amqp!, bytes: Buffer.from("GET / HTTP/1.1\r\n\r\n") },
      {
        port: env.dps.ports.amqp!,
        bytes: Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x03, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
      },
      { port: env.dps.ports.amqp!, bytes: Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x07, 0x01, 0x00, 0x00]) },
      { port: env.dps.ports.mqtt!, bytes: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]) },
      {
        port: env.dps.ports.mqtt!,
        bytes: generate({
          cmd: "publish",
          topic: "$dps/registrations/PUT/iotdps-register/?$rid=1",
          payload: "{}",
          qos: 0,
          retain: false,
          dup: false,
        }),
      },
    ];
    for (const { port, bytes } of junk) await expectClosed(port, env.pki.caCert, bytes);
    const refused = await mqttConnack(env.dps.ports.mqtt!, env.pki.caCert, "x", "not-a-dps-username");
    assert.equal(refused, 4);
    const key = newSymmetricKey();
    env.store.putIndividualEnrollment(symmetricKeyEnrollment("after-junk", key));
    for (const transport of TRANSPORTS) {
      const result = await register(
        sdkEndpoint(env.dps, env.pki.caCert, transport),
        symmetricKeyDevice("after-junk", key),
      );
      assert.equal(result.status, "assigned");
    }
  });
});

describe("DPS emulator, device payload", () => {
  it("echoes the registration payload when configured and gives the IoT Plug and Play model id to the hub", async () => {
    const env = await startTestDps({ dps: { echoDevicePayload: true } });
    try {
      const key = newSymmetricKey();
      env.store.putIndividualEnrollment(symmetricKeyEnrollment("pnp-dev", key));
      const payload = { modelId: "dtmi:com:example:Thermostat;1", note: "température" };
      const result = await register(
        sdkEndpoint(env.dps, env.pki.caCert, "mqtt"),
        symmetricKeyDevice("pnp-dev", key),
        payload,
      );
      assert.deepEqual(
        result.payload,
        payload,
        "non-ASCII survives the SDK's ASCII decoding of MQTT payloads",
      );
      assert.equal(
        env.hub.getDevice("hub-1.emulator.local", "pnp-dev")?.modelId,
        "dtmi:com:example:Thermostat;1",
      );
    } finally {
      await env.dispose();
    }
  });
});

/** Sends bytes over TLS and waits (bounded) for the emulator to close the connection. */
function expectClosed(port: number, ca: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () =>
      socket.write(bytes),
    );
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`port ${port} kept a malformed connection open`));
    }, 10_000);
    socket.on("data", () => undefined);
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
