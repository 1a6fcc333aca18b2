// The emulator's web page against a real emulator over real HTTP on loopback: a symmetric-key device of an
// enrollment group provisions with the unmodified device SDK and connects over AMQP; the page's JSON API
// shows it (connected, attestation, enrollment), its telemetry (JSON and Server-Sent Events), its twin, and
// a desired patch made through the page's API reaches the device. Every API call needs this start's token.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { request, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Script } from "node:vm";
import { Client, Message, type Twin } from "azure-iot-device";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { hubClientFor, provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";
import { startWebUi, WebUiHostError } from "../../src/emulator/web/index.js";
import { PAGE_HTML } from "../../src/emulator/web/page-html.js";
import { PAGE_SCRIPT } from "../../src/emulator/web/page-script.js";

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

function http(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpAnswer> {
  return withTimeout(
    new Promise<HttpAnswer>((resolve, reject) => {
      const req = request(url, { method: options.method ?? "GET", headers: options.headers ?? {} }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(options.body);
    }),
    `${options.method ?? "GET"} ${url}`,
  );
}

interface SseEvent {
  event: string;
  data: string;
}

/** A Server-Sent Events reader: `next` waits (bounded) for the first event that matches. */
function openEventStream(url: string): Promise<{
  status: number;
  next(matches: (event: SseEvent) => boolean, what: string): Promise<SseEvent>;
  close(): void;
}> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = request(url, (res) => {
        const received: SseEvent[] = [];
        const waiters: Array<{ matches: (event: SseEvent) => boolean; resolve: (event: SseEvent) => void }> =
          [];
        let buffer = "";
        res.setEncoding("utf8");
        res.on("error", () => undefined);
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event: SseEvent = { event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) event.event = line.slice(7);
              else if (line.startsWith("data: ")) event.data += line.slice(6);
            }
            if (event.data === "") continue; // a comment (keep-alive)
            received.push(event);
            for (const waiter of [...waiters]) {
              if (waiter.matches(event)) {
                waiters.splice(waiters.indexOf(waiter), 1);
                waiter.resolve(event);
              }
            }
          }
        });
        resolve({
          status: res.statusCode ?? 0,
          next: (matches, what) => {
            const seen = received.find(matches);
            if (seen) return Promise.resolve(seen);
            return withTimeout(
              new Promise<SseEvent>((found) => waiters.push({ matches, resolve: found })),
              `event stream: ${what}`,
            );
          },
          close: () => req.destroy(),
        });
      });
      req.on("error", reject);
      req.end();
    }),
    "open the event stream",
  );
}

describe("emulator web page", () => {
  let dir: string;
  let emulator: Emulator;
  let device: Client | undefined;
  let twin: Twin;
  let base: string;
  let token: string;
  const registrationId = "web-device-1";
  const groupId = "web-group";
  const groupKey = Buffer.alloc(32, 7).toString("base64");

  const bearer = () => ({ Authorization: `Bearer ${token}` });
  const api = async (path: string, options: { method?: string; body?: unknown } = {}) => {
    const answer = await http(`${base}${path}`, {
      ...(options.method ? { method: options.method } : {}),
      headers: { ...bearer(), ...(options.body !== undefined ? { "Content-Type": "application/json" } : {}) },
      ...(options.body !== undefined
        ? { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) }
        : {}),
    });
    return { ...answer, json: answer.text ? (JSON.parse(answer.text) as unknown) : undefined };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "provisio-web-"));
    emulator = await startEmulator({ dataDir: join(dir, "data") });
    const url = new URL(emulator.ui.url);
    token = url.searchParams.get("token") ?? "";
    base = `${url.protocol}//${url.host}`;

    emulator.dps.store.putEnrollmentGroup({
      enrollmentGroupId: groupId,
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey } },
      initialTwin: { properties: { desired: { interval: 10 } } },
    });
    device = await hubClientFor(emulator, await provisionGroupDevice(emulator, groupKey, registrationId));
    await withTimeout(device.open(), "hub open");
    twin = await withTimeout<Twin>(device.getTwin(), "getTwin");
  });

  after(async () => {
    await device?.close().catch(() => undefined);
    await emulator?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("prints a loopback URL with a fresh 32-byte base64url token", () => {
    assert.match(emulator.ui.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token, "base64url").length, 32);
    assert.match(emulator.endpoints.web, /^https:\/\//, "the service API URL is unchanged");
  });

  it("refuses every API call without the token or with a wrong one", async () => {
    const wrong = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    const refused: Array<Record<string, string>> = [
      {},
      { Authorization: `Bearer ${wrong}` },
      { Authorization: token },
    ];
    for (const headers of refused) {
      for (const path of [
        "/ui/api/devices",
        "/ui/api/enrollments",
        `/ui/api/devices/${registrationId}/twin`,
      ]) {
        const answer = await http(`${base}${path}`, { headers });
        assert.equal(answer.status, 401, `${path} with ${JSON.stringify(Object.keys(headers))}`);
        assert.ok(!answer.text.includes(registrationId));
      }
    }
    const patch = await http(`${base}/ui/api/devices/${registrationId}/twin/desired`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ interval: 99 }),
    });
    assert.equal(patch.status, 401);
    assert.equal(
      emulator.hub.service.getTwin(emulator.endpoints.hub.hostName, registrationId)?.properties.desired
        .interval,
      10,
    );
    // The query parameter is only honoured by the event stream (EventSource cannot send headers).
    assert.equal((await http(`${base}/ui/api/devices?token=${token}`)).status, 401);
    const events = await openEventStream(`${base}/ui/api/events?token=${wrong}`);
    events.close();
    assert.equal(events.status, 401);
  });

  it("serves the page without a token, with a self-only CSP and the ids the browser tests use", async () => {
    const page = await http(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    const csp = String(page.headers["content-security-policy"]);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.equal(page.headers["x-content-type-options"], "nosniff");
    assert.equal(page.headers["referrer-policy"], "no-referrer");
    for (const id of [
      "devices",
      "desired-editor",
      "update-desired",
      "telemetry",
      "twin-desired",
      "twin-reported",
      "method-name",
      "method-payload",
      "invoke-method",
      "method-response-payload",
      "c2d-body",
      "c2d-properties",
      "send-c2d",
      "c2d-messages",
    ]) {
      assert.match(page.text, new RegExp(`id="${id}"`), id);
    }
    assert.match(page.text, /open the link the emulator printed/i);
    assert.doesNotMatch(page.text, /<script>|<style>|\son[a-z]+=/i, "no inline script, style or handler");
    const script = await http(`${base}/ui/app.js`);
    assert.equal(script.status, 200);
    assert.match(String(script.headers["content-type"]), /^text\/javascript/);
    assert.equal(script.text, PAGE_SCRIPT);
    assert.equal((await http(`${base}/ui/app.css`)).status, 200);
    assert.equal((await http(`${base}/nothing-here`)).status, 404);
  });

  it("answers only requests addressed to a loopback host name (DNS rebinding)", async () => {
    const rebound = await http(`${base}/ui/api/devices`, {
      headers: { ...bearer(), Host: "attacker.example" },
    });
    assert.equal(rebound.status, 403);
    const viaLocalhost = await http(`${base}/ui/api/devices`, {
      headers: { ...bearer(), Host: `localhost:${new URL(base).port}` },
    });
    assert.equal(viaLocalhost.status, 200);
  });

  it("lists the provisioned device as connected, with its attestation and enrollment group", async () => {
    const answer = await api("/ui/api/devices");
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["cache-control"], "no-store");
    const body = answer.json as { hubHostName: string; devices: Array<Record<string, unknown>> };
    assert.equal(body.hubHostName, emulator.endpoints.hub.hostName);
    const listed = body.devices.find((d) => d.deviceId === registrationId);
    assert.ok(listed, JSON.stringify(body));
    assert.equal(listed.connected, true);
    assert.equal(listed.status, "enabled");
    assert.equal(listed.authentication, "sas");
    assert.equal(listed.attestation, "symmetricKey");
    assert.deepEqual(listed.enrollment, { kind: "group", id: groupId, registrationId });
    assert.ok(!answer.text.includes(groupKey), "no key in the view");
  });

  it("names the individual enrollment of a device DPS assigned through one, and shows disabled devices", async () => {
    const hubHostName = emulator.endpoints.hub.hostName;
    const key = Buffer.alloc(32, 9).toString("base64");
    emulator.dps.store.putIndividualEnrollment({
      registrationId: "web-individual",
      deviceId: "web-individual-device",
      attestation: { type: "symmetricKey", symmetricKey: { primaryKey: key, secondaryKey: key } },
    });
    emulator.dps.store.putRegistrationState({
      registrationId: "web-individual",
      deviceId: "web-individual-device",
      assignedHub: hubHostName,
      status: "assigned",
    });
    emulator.hub.registry.upsertDevice({
      hubHostName,
      deviceId: "web-individual-device",
      status: "disabled",
      authentication: { type: "sas", symmetricKey: { primaryKey: key } },
    });
    try {
      const devices = (await api("/ui/api/devices")).json as { devices: Array<Record<string, unknown>> };
      const listed = devices.devices.find((d) => d.deviceId === "web-individual-device");
      assert.deepEqual(listed?.enrollment, {
        kind: "individual",
        id: "web-individual",
        registrationId: "web-individual",
      });
      assert.equal(listed?.status, "disabled");
      assert.equal(listed?.connected, false);
      const enrollments = await api("/ui/api/enrollments");
      const individual = (enrollments.json as { individual: Array<Record<string, unknown>> }).individual;
      assert.equal(individual[0]?.registrationId, "web-individual");
      assert.equal((individual[0]?.registration as { status?: string } | undefined)?.status, "assigned");
      assert.ok(!enrollments.text.includes(key), "no key in the view");
    } finally {
      emulator.hub.registry.deleteDevice(hubHostName, "web-individual-device");
      emulator.dps.store.deleteRegistrationState("web-individual");
      emulator.dps.store.deleteIndividualEnrollment("web-individual");
    }
  });

  it("shows the enrollments read-only, without their keys", async () => {
    const answer = await api("/ui/api/enrollments");
    assert.equal(answer.status, 200);
    const body = answer.json as {
      individual: unknown[];
      groups: Array<{
        enrollmentGroupId: string;
        attestation: string;
        registrations: Array<Record<string, unknown>>;
      }>;
    };
    assert.deepEqual(body.individual, []);
    assert.equal(body.groups.length, 1);
    assert.equal(body.groups[0]?.enrollmentGroupId, groupId);
    assert.equal(body.groups[0]?.attestation, "symmetricKey");
    assert.equal(body.groups[0]?.registrations[0]?.deviceId, registrationId);
    assert.equal(body.groups[0]?.registrations[0]?.status, "assigned");
    assert.ok(!answer.text.includes(groupKey));
    assert.equal((await api("/ui/api/enrollments", { method: "DELETE" })).status, 405);
  });

  it("delivers telemetry in the JSON API and live over Server-Sent Events", async () => {
    const events = await openEventStream(`${base}/ui/api/events?token=${encodeURIComponent(token)}`);
    try {
      assert.equal(events.status, 200);
      const message = new Message(JSON.stringify({ temperature: 22.5 }));
      message.messageId = "web-telemetry-1";
      message.properties.add("unit", "celsius");
      await withTimeout(device!.sendEvent(message), "sendEvent");
      const event = await events.next(
        (e) => e.event === "telemetry" && e.data.includes("web-telemetry-1"),
        "the telemetry event",
      );
      const streamed = JSON.parse(event.data) as {
        deviceId: string;
        body: unknown;
        properties: Record<string, string>;
      };
      assert.equal(streamed.deviceId, registrationId);
      assert.deepEqual(streamed.body, { temperature: 22.5 });
      assert.equal(streamed.properties.unit, "celsius");
    } finally {
      events.close();
    }
    const recent = await api(`/ui/api/devices/${registrationId}/telemetry`);
    assert.equal(recent.status, 200);
    const records = recent.json as Array<{
      body: unknown;
      properties: Record<string, string>;
      systemProperties: { messageId?: string };
    }>;
    const found = records.find((r) => r.systemProperties.messageId === "web-telemetry-1");
    assert.deepEqual(found?.body, { temperature: 22.5 });
    assert.equal(found?.properties.unit, "celsius");
    const detail = await api(`/ui/api/devices/${registrationId}`);
    const shown = detail.json as {
      device: { deviceId: string; lastTelemetryUtc?: string };
      telemetry: unknown[];
    };
    assert.equal(shown.device.deviceId, registrationId);
    assert.ok(shown.device.lastTelemetryUtc);
    assert.ok(shown.telemetry.length >= 1);
  });

  it("sends a desired patch made through the page's API to the device and shows the new twin", async () => {
    const received = new Promise<Record<string, unknown>>((resolve) => {
      twin.on("properties.desired", (delta: Record<string, unknown>) => {
        if (delta.interval === 4) resolve(delta);
      });
    });
    const before = (await api(`/ui/api/devices/${registrationId}/twin`)).json as {
      properties: { desired: { $version: number } };
    };
    const patched = await api(`/ui/api/devices/${registrationId}/twin/desired`, {
      method: "PATCH",
      body: { interval: 4, mode: { eco: true } },
    });
    assert.equal(patched.status, 200, patched.text);
    const delta = await withTimeout(received, "desired patch at the device");
    assert.equal(delta.interval, 4);
    assert.deepEqual(delta.mode, { eco: true });
    const after = (await api(`/ui/api/devices/${registrationId}/twin`)).json as {
      properties: { desired: { $version: number; interval: number }; reported: { $version: number } };
    };
    assert.equal(after.properties.desired.interval, 4);
    assert.equal(after.properties.desired.$version, before.properties.desired.$version + 1);
    assert.equal(typeof after.properties.reported.$version, "number");

    // null removes a key (JSON merge patch).
    const removed = await api(`/ui/api/devices/${registrationId}/twin/desired`, {
      method: "PATCH",
      body: { mode: null },
    });
    assert.equal(removed.status, 200);
    assert.equal(
      (removed.json as { properties: { desired: Record<string, unknown> } }).properties.desired.mode,
      undefined,
    );
  });

  it("reports bad patches as errors the page can show, and leaves the twin alone", async () => {
    const cases: Array<[string, unknown, number]> = [
      ["not JSON", "{interval:", 400],
      ["an array", [1, 2], 400],
      ["an invalid property name", { "bad.name": 1 }, 400],
    ];
    const desiredBefore = emulator.hub.service.getTwin(emulator.endpoints.hub.hostName, registrationId)
      ?.properties.desired;
    for (const [what, body, status] of cases) {
      const answer = await api(`/ui/api/devices/${registrationId}/twin/desired`, { method: "PATCH", body });
      assert.equal(answer.status, status, what);
      const error = (answer.json as { error: { message: string } }).error;
      assert.ok(error.message.length > 0, what);
    }
    const unknown = await api("/ui/api/devices/no-such-device/twin/desired", {
      method: "PATCH",
      body: { a: 1 },
    });
    assert.equal(unknown.status, 404);
    const plainText = await http(`${base}/ui/api/devices/${registrationId}/twin/desired`, {
      method: "PATCH",
      headers: { ...bearer(), "Content-Type": "text/plain" },
      body: '{"interval":1}',
    });
    assert.equal(plainText.status, 415);
    assert.deepEqual(
      emulator.hub.service.getTwin(emulator.endpoints.hub.hostName, registrationId)?.properties.desired,
      desiredBefore,
    );
  });

  it("delivers markup in telemetry as data, never as markup", async () => {
    const hostile = '<script>window.pwned = 1</script><img src=x onerror="alert(1)">';
    const events = await openEventStream(`${base}/ui/api/events?token=${encodeURIComponent(token)}`);
    try {
      const message = new Message(hostile);
      message.messageId = "web-hostile-1";
      message.properties.add("<b>name</b>", "<i>value</i>");
      await withTimeout(device!.sendEvent(message), "sendEvent");
      const event = await events.next((e) => e.data.includes("web-hostile-1"), "the hostile telemetry event");
      const streamed = JSON.parse(event.data) as { body: unknown; properties: Record<string, string> };
      assert.equal(streamed.body, hostile);
      assert.equal(streamed.properties["<b>name</b>"], "<i>value</i>");
    } finally {
      events.close();
    }
    const recent = await api(`/ui/api/devices/${registrationId}/telemetry?limit=1`);
    assert.match(String(recent.headers["content-type"]), /^application\/json/);
    assert.equal(recent.headers["x-content-type-options"], "nosniff");
    const [record] = recent.json as Array<{ body: unknown; properties: Record<string, string> }>;
    assert.equal(record?.body, hostile);
    assert.equal(record?.properties["<b>name</b>"], "<i>value</i>");
    // The page puts device data in as text only: nothing in its script parses HTML.
    assert.doesNotMatch(
      PAGE_SCRIPT,
      /innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|eval\(/,
    );
    assert.doesNotThrow(() => new Script(PAGE_SCRIPT), "the page script parses");
    assert.ok(PAGE_HTML.includes('src="/ui/app.js"'));
  });

  it("refuses a non-loopback listen address unless asked, and makes a new token at each start", async () => {
    const backend = {
      registry: emulator.hub.registry,
      service: emulator.hub.service,
      enrollments: emulator.dps.store,
      hubHostName: emulator.endpoints.hub.hostName,
    };
    await assert.rejects(startWebUi({ backend, host: "0.0.0.0" }), WebUiHostError);
    await assert.rejects(startWebUi({ backend, host: "192.0.2.10" }), WebUiHostError);
    const again = await startWebUi({ backend });
    try {
      const otherToken = new URL(again.url).searchParams.get("token");
      assert.notEqual(otherToken, token);
      const otherBase = `http://127.0.0.1:${again.port}`;
      assert.equal((await http(`${otherBase}/ui/api/devices`, { headers: bearer() })).status, 401);
      assert.equal(
        (await http(`${otherBase}/ui/api/devices`, { headers: { Authorization: `Bearer ${otherToken}` } }))
          .status,
        200,
      );
    } finally {
      await again.close();
    }
  });
});
