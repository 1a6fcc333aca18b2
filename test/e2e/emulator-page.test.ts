// The emulator's own page in a real Chromium, driving a device that runs the unmodified device SDK over AMQP:
// "Invoke method" shows the device's answer, "Send message" shows the C2D message completed (or rejected)
// once the device settled it, and text with markup or script (a device id, a method answer, message bodies
// and properties) shows as text and never runs. Screenshots: test-artifacts/e2e-emulator-page/.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { Client, type DeviceMethodRequest, type DeviceMethodResponse, type Message } from "azure-iot-device";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  chromiumUnavailableReason,
  launchTestBrowser,
  saveScreenshot,
  type TestBrowser,
} from "../support/e2e-browser.js";
import { hubClientFor, provisionGroupDevice, withTimeout } from "../support/emulator-fixture.js";
import { removeQuietly } from "../support/e2e-node-red.js";

const artifactsDir = join(__dirname, "..", "..", "test-artifacts", "e2e-emulator-page");
const STEP_MS = 15_000;
const DEVICE_ID = "e2e-page-device";
/** Markup a device could carry: were any of it parsed, window.pwned would be set. */
const HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>';
/** IoT Hub ids allow no angle brackets, but quotes, parentheses and "=": script if pasted into code or attributes. */
const HOSTILE_DEVICE_ID = "x'),(window.pwned=3),('";

declare global {
  interface Window {
    pwned?: number;
  }
}

const skipReason = chromiumUnavailableReason();

describe(
  "the emulator page invokes methods and sends C2D messages, in Chromium",
  { skip: skipReason ?? false },
  () => {
    let dir: string | undefined;
    let emulator: Emulator | undefined;
    let device: Client | undefined;
    let browser: TestBrowser | undefined;
    let page: Page;
    const received: Message[] = [];
    const scriptErrors: string[] = [];

    before(
      async () => {
        await rm(artifactsDir, { recursive: true, force: true });
        await mkdir(artifactsDir, { recursive: true });
        dir = await mkdtemp(join(tmpdir(), "provisio-e2e-emulator-page-"));
        emulator = await startEmulator({ dataDir: dir });
        const groupKey = Buffer.alloc(32, 5).toString("base64");
        emulator.dps.store.putEnrollmentGroup({
          enrollmentGroupId: "e2e-page",
          attestation: {
            type: "symmetricKey",
            symmetricKey: { primaryKey: groupKey, secondaryKey: groupKey },
          },
        });
        device = await hubClientFor(emulator, await provisionGroupDevice(emulator, groupKey, DEVICE_ID));
        device.onDeviceMethod("setRecipe", (request: DeviceMethodRequest, response: DeviceMethodResponse) => {
          const recipe = (request.payload as { recipe?: string } | null)?.recipe;
          response.send(200, { accepted: recipe, note: HOSTILE }, () => undefined);
        });
        device.on("message", (message: Message) => {
          received.push(message);
          const done = (): void => undefined;
          if (message.properties.getValue("action") === "reject") device!.reject(message, done);
          else device!.complete(message, done);
        });
        await withTimeout(device.open(), "device open");
        // Registered, never connected.
        emulator.hub.registry.upsertDevice({
          hubHostName: emulator.endpoints.hub.hostName,
          deviceId: HOSTILE_DEVICE_ID,
          status: "enabled",
          authentication: { type: "sas", symmetricKey: { primaryKey: groupKey } },
        });

        browser = await launchTestBrowser();
        page = browser.context.pages()[0] ?? (await browser.context.newPage());
        page.setDefaultTimeout(STEP_MS);
        page.on("pageerror", (error) => scriptErrors.push(error.message));
        await page.goto(emulator.ui.url);
        await page.locator(`#devices [data-device-id="${DEVICE_ID}"]`).click({ timeout: 30_000 });
        await page.locator("#method-form").waitFor({ state: "visible" });
      },
      { timeout: 90_000 },
    );

    after(async () => {
      await browser?.close();
      await device?.close().catch(() => undefined);
      await emulator?.close().catch(() => undefined);
      await removeQuietly(dir);
    });

    it("Invoke method shows the device's status and payload", async () => {
      await page.locator("#method-name").fill("setRecipe");
      await page.locator("#method-timeout").fill("10");
      await page.locator("#method-payload").fill(JSON.stringify({ recipe: "B-7" }));
      await page.locator("#invoke-method").click();
      await page.locator("#method-response-status", { hasText: "status 200" }).waitFor();
      const shown = JSON.parse(await page.locator("#method-response-payload").innerText()) as Record<
        string,
        string
      >;
      assert.deepEqual(
        shown,
        { accepted: "B-7", note: HOSTILE },
        "the answer, markup and all, shown as text",
      );
      assert.equal(
        await page.locator("#method-response-payload img, #method-response-payload script").count(),
        0,
      );
      assert.match(await page.locator("#method-result").innerText(), /Answered setRecipe/);
      await saveScreenshot(page, artifactsDir, "1-method-answered");
    });

    it("a method nobody handles in time shows the timeout", { timeout: 30_000 }, async () => {
      await page.locator("#method-name").fill("notHandled");
      await page.locator("#method-timeout").fill("5");
      await page.locator("#method-payload").fill("{}");
      await page.locator("#invoke-method").click();
      await page
        .locator("#method-error", { hasText: /No answer in time \(504\)/ })
        .waitFor({ timeout: 20_000 });
      assert.equal(await page.locator("#method-response").isHidden(), true);
      await saveScreenshot(page, artifactsDir, "2-method-timeout");
    });

    it("Send message shows the C2D message completed once the device completed it", async () => {
      await page.locator("#c2d-body").fill(JSON.stringify({ recipe: "B-8" }));
      await page.locator("#c2d-content-type").fill("application/json");
      await page.locator("#c2d-ack").selectOption("full");
      await page.locator("#c2d-properties").fill(`line=3\nnote=${HOSTILE}`);
      await page.locator("#send-c2d").click();
      const item = page.locator('#c2d-messages [data-testid="c2d-message"]').first();
      await item.locator('[data-testid="c2d-state"]', { hasText: /^completed$/ }).waitFor();
      assert.equal(await item.getAttribute("data-state"), "completed");
      assert.match(await item.locator('[data-testid="c2d-feedback"]').innerText(), /Success/);
      const messageId = await item.getAttribute("data-message-id");
      const message = received.find((m) => m.messageId === messageId);
      assert.ok(message, "the device received the message the page lists");
      assert.deepEqual(JSON.parse((message.getData() as Buffer).toString("utf8")), { recipe: "B-8" });
      assert.equal(message.contentType, "application/json");
      assert.equal(message.properties.getValue("line"), "3");
      assert.equal(message.properties.getValue("note"), HOSTILE);
      assert.ok((await item.innerText()).includes(HOSTILE), "the property value shows as text");
      await saveScreenshot(page, artifactsDir, "3-c2d-completed");
    });

    it("a message the device rejects shows as rejected", async () => {
      await page.locator("#c2d-body").fill(HOSTILE);
      await page.locator("#c2d-content-type").fill("text/plain");
      await page.locator("#c2d-properties").fill('{"action": "reject"}');
      await page.locator("#send-c2d").click();
      const item = page.locator('#c2d-messages [data-testid="c2d-message"]').first();
      await item.locator('[data-testid="c2d-state"]', { hasText: /^rejected$/ }).waitFor();
      assert.equal(await item.locator('[data-testid="c2d-message-body"]').innerText(), HOSTILE);
      assert.equal(await page.locator('#c2d-messages [data-testid="c2d-message"]').count(), 2);
      await saveScreenshot(page, artifactsDir, "4-c2d-rejected");
    });

    it("a device id with quotes and parentheses shows as text, and a method call to it says it is offline", async () => {
      const row = page.locator("#devices tr").filter({ hasText: HOSTILE_DEVICE_ID });
      await row.click();
      await page.locator("#device-title", { hasText: HOSTILE_DEVICE_ID }).waitFor();
      await page.locator("#method-name").fill("setRecipe");
      await page.locator("#method-timeout").fill("5");
      await page.locator("#invoke-method").click();
      await page.locator("#method-error", { hasText: /Device offline \(404\)/ }).waitFor();
      assert.ok((await page.locator("#method-error").innerText()).includes(HOSTILE_DEVICE_ID));
      assert.equal(
        await page.locator("#c2d-messages li").count(),
        0,
        "the other device's messages are not listed",
      );
      assert.equal(await page.locator("main img").count(), 0);
      assert.equal(await page.evaluate(() => window.pwned), undefined, "no device-provided markup ran");
      await saveScreenshot(page, artifactsDir, "5-hostile-device");
    });

    it("the page raised no script errors", () => {
      assert.deepEqual(scriptErrors, []);
    });
  },
);
