// DeviceSession through a real HTTP proxy (tinyproxy on loopback, CONNECT with Basic authentication): DPS over
// HTTPS and AMQP over WebSocket, the hub over AMQP and MQTT over WebSocket, with the emulator in Azure's layout
// (DPS and the hub on 443 of loopback addresses of their own). A wrong proxy password is a clear, retried
// error; a proxy killed mid-stream and started again loses nothing; NO_PROXY is honoured.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  DeviceSession,
  type DeviceSessionConfig,
  type DpsTransportKind,
  type HubTransportKind,
  type SessionStateEvent,
} from "../../src/device/index.js";
import type { ProxyConfig } from "../../src/device/proxy.js";
import { lastOccurrences } from "../support/delivery-order.js";
import { waitForSession, waitForState } from "../support/session-waits.js";
import { startTinyproxy, type TestProxy } from "../support/tinyproxy.js";

/** This file's own addresses: DPS and the hub listen on 443. */
const DPS_HOST = "127.0.0.144";
const HUB_HOST = "127.0.0.145";
const PROXY_USER = "plant";
const PROXY_PASSWORD = "s3cret-proxy-pw";

describe("device session through an HTTP proxy", () => {
  let dir: string;
  let emulator: Emulator | undefined;
  let proxy: TestProxy | undefined;
  let skipReason: string | undefined;
  const sessions: DeviceSession[] = [];
  let enrolled = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-session-proxy-"));
    try {
      emulator = await startEmulator({
        dataDir: join(dir, "emulator"),
        host: DPS_HOST,
        httpsPort: 443,
        hubHost: HUB_HOST,
        hubHttpsPort: 443,
      });
      proxy = await startTinyproxy({ auth: { username: PROXY_USER, password: PROXY_PASSWORD } });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const name = (error as Error).name;
      if (name === "TinyproxyNotInstalledError") skipReason = (error as Error).message;
      else if (code === "EACCES" || code === "EADDRNOTAVAIL" || code === "EPERM") {
        skipReason = `cannot listen on ${DPS_HOST}:443 and ${HUB_HOST}:443 here (${code})`;
      } else throw error;
    }
  });

  after(async () => {
    for (const session of sessions) await session.close();
    await proxy?.dispose();
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A fresh individually enrolled symmetric-key device. */
  function enrol(): { registrationId: string; key: string } {
    enrolled += 1;
    const registrationId = `proxied-${enrolled}`;
    const key = Buffer.from(`key-of-${registrationId}-0123456789abcdef`).toString("base64");
    emulator?.dps.store.putIndividualEnrollment({
      registrationId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key } },
    });
    return { registrationId, key };
  }

  function sessionFor(
    device: { registrationId: string; key: string },
    transports: { dps: DpsTransportKind; hub: HubTransportKind },
    proxyConfig: ProxyConfig,
  ): DeviceSession {
    const config: DeviceSessionConfig = {
      dps: {
        globalEndpoint: DPS_HOST,
        idScope: emulator!.idScope,
        transport: transports.dps,
        ca: emulator!.caPem,
      },
      hub: { transport: transports.hub },
      proxy: proxyConfig,
      attestation: { kind: "symmetricKey", registrationId: device.registrationId, key: device.key },
      options: {
        backoff: { delayMs: () => 300 },
        twinTimeoutMs: 10_000,
        telemetryAckTimeoutMs: 5_000,
        connectTimeoutMs: 10_000,
      },
    };
    const session = new DeviceSession(config);
    sessions.push(session);
    return session;
  }

  const authenticated = (): ProxyConfig => ({
    url: proxy!.url,
    username: PROXY_USER,
    password: PROXY_PASSWORD,
  });

  function recordedIds(deviceId: string): string[] {
    return emulator!.hub.service
      .recentTelemetry(HUB_HOST, deviceId)
      .map((record) => record.systemProperties.messageId ?? "");
  }

  for (const transports of [
    { dps: "https", hub: "mqtt-ws" },
    { dps: "amqp-ws", hub: "amqp-ws" },
  ] as const) {
    it(`provisions over DPS ${transports.dps} and connects over ${transports.hub}, both through the proxy`, async (t) => {
      if (!emulator || !proxy) return t.skip(skipReason);
      const device = enrol();
      const before = await proxy.log();
      const session = sessionFor(device, transports, authenticated());
      session.start();
      await waitForState(session, "connected");
      await session.sendTelemetry({ proxied: true }, { messageId: "through-proxy" });
      assert.deepEqual(recordedIds(device.registrationId), ["through-proxy"]);
      assert.equal(typeof (await session.reportProperties({ proxied: transports.hub })), "number");
      const tunnels = (await proxy.log()).slice(before.length);
      assert.match(
        tunnels,
        new RegExp(`CONNECT ${DPS_HOST.replaceAll(".", "\\.")}:443`),
        "DPS went through it",
      );
      assert.match(
        tunnels,
        new RegExp(`CONNECT ${HUB_HOST.replaceAll(".", "\\.")}:443`),
        "the hub went through it",
      );
      await session.close();
    });
  }

  it("a wrong proxy password: a clear error naming the refusal, retried, and the password never shown", async (t) => {
    if (!emulator || !proxy) return t.skip(skipReason);
    const device = enrol();
    const session = sessionFor(
      device,
      { dps: "https", hub: "mqtt-ws" },
      { url: proxy.url, username: PROXY_USER, password: "not-the-password" },
    );
    const retries: SessionStateEvent[] = [];
    session.on("state", (event) => {
      if (event.state === "retrying") retries.push(event);
    });
    session.start();
    await waitForSession<SessionStateEvent>(
      session,
      "state",
      (e) => e.state === "retrying" && e.attempt === 2,
      "a second retry",
    );
    assert.match(
      retries[0]?.error ?? "",
      /HTTP proxy .* refused the tunnel .*: 40[17] .*check the proxy user name and password/,
    );
    assert.ok(!JSON.stringify(retries).includes("not-the-password"));
    assert.equal(session.state === "error", false, "not given up");
    await session.close();
  });

  it("the proxy killed mid-stream and started again: the session reconnects through it and nothing is lost", async (t) => {
    if (!emulator || !proxy) return t.skip(skipReason);
    const device = enrol();
    const session = sessionFor(device, { dps: "https", hub: "amqp-ws" }, authenticated());
    session.start();
    await waitForState(session, "connected");
    const ids = Array.from({ length: 60 }, (_, n) => `stream-${n}`);
    const sends: Promise<unknown>[] = [];
    for (const id of ids.slice(0, 20)) sends.push(session.sendTelemetry({ id }, { messageId: id }));
    await Promise.all(sends);
    const lost = waitForState(session, "disconnected");
    await proxy.kill();
    for (const id of ids.slice(20)) sends.push(session.sendTelemetry({ id }, { messageId: id }));
    await lost;
    await proxy.restart();
    await Promise.all(sends);
    const recorded = recordedIds(device.registrationId);
    assert.deepEqual(lastOccurrences(recorded), ids, "every message arrived, in order");
    await session.close();
  });

  it("honours NO_PROXY: a host on the list is reached directly, another goes to the (dead) proxy", async (t) => {
    if (!emulator || !proxy) return t.skip(skipReason);
    const saved = { HTTPS_PROXY: process.env.HTTPS_PROXY, NO_PROXY: process.env.NO_PROXY };
    // Nothing listens there: only a host on NO_PROXY can get anywhere.
    process.env.HTTPS_PROXY = "http://127.0.0.1:9";
    try {
      process.env.NO_PROXY = `localhost,${DPS_HOST},.example.com,${HUB_HOST}:443`;
      const direct = sessionFor(enrol(), { dps: "https", hub: "mqtt-ws" }, { fromEnvironment: true });
      direct.start();
      await waitForState(direct, "connected");
      await direct.close();

      process.env.NO_PROXY = `${HUB_HOST}:8883`;
      const proxied = sessionFor(enrol(), { dps: "https", hub: "mqtt-ws" }, { fromEnvironment: true });
      proxied.start();
      const refused = await waitForState(proxied, "retrying");
      assert.match(refused.error ?? "", /cannot reach the HTTP proxy 127\.0\.0\.1:9/);
      await proxied.close();
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
