// The emulator page against a real Node-RED with our package: a flow answers direct methods (method ->
// function -> method response) and takes cloud-to-device messages (c2d in -> debug). In Chromium, a method
// invoked on the emulator page shows the flow's answer, and a C2D message sent there shows as completed on
// the page and arrives in the editor's debug sidebar; the three nodes' edit dialogs open with the flow's settings
// and their help. Screenshots: test-artifacts/e2e-emulator-page-flow/.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import {
  chromiumUnavailableReason,
  launchTestBrowser,
  saveScreenshot,
  type TestBrowser,
} from "../support/e2e-browser.js";
import { removeQuietly, startNodeRed, type NodeRedProcess } from "../support/e2e-node-red.js";

const repoRoot = join(__dirname, "..", "..");
const artifactsDir = join(repoRoot, "test-artifacts", "e2e-emulator-page-flow");
const STEP_MS = 15_000;
const CONNECT_BOUND_MS = 60_000;
const DEVICE_ID = "e2e-flow-gateway";
const DEVICE_KEY = Buffer.from("e2e-flow-gateway-key-0123456789ab").toString("base64");
/** Values the flow never had: seeing them proves the call and the message went through the flow. */
const RECIPE = "PET-500";
const C2D_RECIPE = "PET-777";

/** The flow, deployed through the admin API with its credentials (never in the flow JSON of a file). */
function commandFlow(emulator: Emulator): Array<Record<string, unknown>> {
  const tab = "e2e-commands-tab";
  return [
    { id: tab, type: "tab", label: "commands" },
    {
      id: "e2e-dps",
      type: "provisio-azure-dps",
      name: "emulator DPS",
      globalEndpoint: emulator.endpoints.dps.amqp,
      idScope: emulator.idScope,
      transport: "amqp",
      caSource: "text",
      credentials: { caPem: emulator.caPem },
    },
    {
      id: "e2e-device",
      type: "provisio-azure-device",
      name: "flow gateway",
      dps: "e2e-dps",
      attestation: "symmetricKey",
      registrationId: DEVICE_ID,
      outboxLimit: 1000,
      outboxOverflow: "drop-oldest",
      outboxStorage: "memory",
      credentials: { symmetricKey: DEVICE_KEY },
    },
    {
      id: "e2e-provision",
      type: "provisio-azure-provision",
      z: tab,
      device: "e2e-device",
      connectOnDeploy: true,
      x: 140,
      y: 60,
      wires: [[]],
    },
    {
      id: "e2e-method",
      type: "provisio-azure-method",
      z: tab,
      device: "e2e-device",
      methods: "setRecipe",
      responseTimeout: 30,
      x: 140,
      y: 120,
      wires: [["e2e-answer"]],
    },
    {
      id: "e2e-answer",
      type: "function",
      z: tab,
      name: "answer",
      func: 'msg.statusCode = 200;\nmsg.payload = { recipe: msg.payload.recipe, answeredBy: "flow" };\nreturn msg;',
      outputs: 1,
      x: 340,
      y: 120,
      wires: [["e2e-method-response"]],
    },
    {
      id: "e2e-method-response",
      type: "provisio-azure-method-response",
      z: tab,
      device: "e2e-device",
      statusCode: 200,
      x: 560,
      y: 120,
      wires: [],
    },
    {
      id: "e2e-c2d-in",
      type: "provisio-azure-c2d-in",
      z: tab,
      device: "e2e-device",
      settle: "auto",
      x: 140,
      y: 180,
      wires: [["e2e-c2d-debug"]],
    },
    {
      id: "e2e-c2d-debug",
      type: "debug",
      z: tab,
      name: "cloud messages",
      active: true,
      tosidebar: true,
      console: false,
      complete: "payload",
      targetType: "msg",
      x: 360,
      y: 180,
      wires: [],
    },
  ];
}

/** The part of the editor's global `RED` used below (the function runs in the browser). */
declare const RED: {
  nodes: {
    eachNode(cb: (n: { type: string; valid?: boolean; validationErrors?: string[] }) => void): void;
    eachConfig(cb: (n: { type: string; valid?: boolean; validationErrors?: string[] }) => void): void;
  };
};

const skipReason = chromiumUnavailableReason();

describe(
  "the emulator page drives a Node-RED flow's method and c2d in nodes, in Chromium",
  { skip: skipReason ?? false },
  () => {
    let emulatorDir: string | undefined;
    let emulator: Emulator | undefined;
    let nodeRed: NodeRedProcess | undefined;
    let browser: TestBrowser | undefined;
    let editor: Page;
    let emulatorPage: Page;
    const scriptErrors: string[] = [];

    before(
      async () => {
        if (
          !existsSync(join(repoRoot, "lib", "nodes")) ||
          !existsSync(join(repoRoot, "nodes", "azure-iot-c2d-in.js"))
        ) {
          throw new Error(
            "lib/ or nodes/*.js is missing: run `npm run build` (npm test does) before the e2e suite",
          );
        }
        await rm(artifactsDir, { recursive: true, force: true });
        await mkdir(artifactsDir, { recursive: true });
        emulatorDir = await mkdtemp(join(tmpdir(), "provisio-e2e-page-flow-"));
        emulator = await startEmulator({ dataDir: emulatorDir });
        emulator.dps.store.putIndividualEnrollment({
          registrationId: DEVICE_ID,
          attestation: { type: "symmetricKey", symmetricKey: { primaryKey: DEVICE_KEY } },
        });
        nodeRed = await startNodeRed({ packageDir: repoRoot, startTimeoutMs: 25_000 });
        const deployed = await fetch(`${nodeRed.url}/flows`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Node-RED-Deployment-Type": "full" },
          body: JSON.stringify(commandFlow(emulator)),
        });
        assert.equal(deployed.status, 204, `deploy: ${deployed.status} ${await deployed.text()}`);

        browser = await launchTestBrowser();
        editor = browser.context.pages()[0] ?? (await browser.context.newPage());
        editor.setDefaultTimeout(STEP_MS);
        editor.on("pageerror", (error) => scriptErrors.push(`editor: ${error.message}`));
        await editor.goto(`${nodeRed.url}/`);
        await editor
          .locator('.red-ui-palette-node[data-palette-type="provisio-azure-c2d-in"]')
          .waitFor({ timeout: 20_000 });
        // The debug sidebar only shows what arrives while it is open.
        if ((await editor.locator(".red-ui-debug-content").filter({ visible: true }).count()) === 0) {
          await editor
            .locator("#red-ui-tab-debug-link-button")
            .or(editor.locator('button[data-tab-id="debug"]'))
            .first()
            .click();
        }
        await editor.locator(".red-ui-debug-content").filter({ visible: true }).first().waitFor();

        const deadline = Date.now() + CONNECT_BOUND_MS;
        while (!emulator.hub.service.isConnected(emulator.endpoints.hub.hostName, DEVICE_ID)) {
          if (Date.now() > deadline)
            throw new Error(
              `the flow's device never connected\n--- Node-RED output ---\n${nodeRed.log().slice(-3000)}`,
            );
          await new Promise((resolve) => setTimeout(resolve, 200));
        }

        emulatorPage = await browser.context.newPage();
        emulatorPage.setDefaultTimeout(STEP_MS);
        emulatorPage.on("pageerror", (error) => scriptErrors.push(`emulator page: ${error.message}`));
        await emulatorPage.goto(emulator.ui.url);
        await emulatorPage.locator(`#devices [data-device-id="${DEVICE_ID}"]`).click({ timeout: 30_000 });
        await emulatorPage.locator("#method-form").waitFor({ state: "visible" });
      },
      { timeout: CONNECT_BOUND_MS + 60_000 },
    );

    after(async () => {
      await browser?.close();
      await nodeRed?.stop();
      await emulator?.close().catch(() => undefined);
      await removeQuietly(emulatorDir);
    });

    it("a method invoked on the emulator page shows the flow's answer", async () => {
      await emulatorPage.locator("#method-name").fill("setRecipe");
      await emulatorPage.locator("#method-timeout").fill("20");
      await emulatorPage.locator("#method-payload").fill(JSON.stringify({ recipe: RECIPE }));
      await emulatorPage.locator("#invoke-method").click();
      await emulatorPage
        .locator("#method-response-status", { hasText: "status 200" })
        .waitFor({ timeout: 25_000 })
        .catch(async (error: Error) => {
          const shown = await emulatorPage
            .locator("#method-error")
            .innerText()
            .catch(() => "");
          throw new Error(
            `${error.message}\npage error: ${shown}\n--- Node-RED output ---\n${nodeRed!.log().slice(-3000)}`,
          );
        });
      const answer = JSON.parse(
        await emulatorPage.locator("#method-response-payload").innerText(),
      ) as unknown;
      assert.deepEqual(answer, { recipe: RECIPE, answeredBy: "flow" });
      await saveScreenshot(emulatorPage, artifactsDir, "1-method-answered-by-flow");
    });

    it("a method no node of the flow takes is answered 404 by the device at once", async () => {
      await emulatorPage.locator("#method-name").fill("notInTheFlow");
      await emulatorPage.locator("#method-payload").fill("{}");
      await emulatorPage.locator("#invoke-method").click();
      await emulatorPage.locator("#method-response-status", { hasText: "status 404" }).waitFor();
      await saveScreenshot(emulatorPage, artifactsDir, "2-method-not-implemented");
    });

    it("a C2D message sent on the emulator page is completed and reaches the debug sidebar", async () => {
      await emulatorPage.locator("#c2d-body").fill(JSON.stringify({ recipe: C2D_RECIPE }));
      await emulatorPage.locator("#c2d-content-type").fill("application/json");
      await emulatorPage.locator("#c2d-properties").fill("line=3");
      await emulatorPage.locator("#send-c2d").click();
      const item = emulatorPage.locator('#c2d-messages [data-testid="c2d-message"]').first();
      await item
        .locator('[data-testid="c2d-state"]', { hasText: /^completed$/ })
        .waitFor({ timeout: 25_000 });
      await saveScreenshot(emulatorPage, artifactsDir, "3-c2d-completed");

      await editor.bringToFront();
      // The payload arrives parsed (content type application/json): the sidebar previews it as an object.
      const debugMessage = editor
        .locator(".red-ui-debug-msg", { hasText: "node: cloud messages" })
        .filter({ hasText: new RegExp(`recipe:\\s*"${C2D_RECIPE}"`) });
      await debugMessage.first().waitFor({ state: "visible", timeout: 20_000 });
      await debugMessage.first().scrollIntoViewIfNeeded();
      await saveScreenshot(editor, artifactsDir, "4-c2d-in-debug-sidebar");
      // The deployed flow is one the editor finds complete: no node marked as having invalid properties.
      const invalid = await editor.evaluate(() => {
        const found: string[] = [];
        // Inline callbacks only: a named function here would reach the browser with the bundler's helpers.
        RED.nodes.eachNode((n) => {
          if (n.valid === false) found.push(`${n.type}: ${(n.validationErrors ?? []).join(", ")}`);
        });
        RED.nodes.eachConfig((n) => {
          if (n.valid === false) found.push(`${n.type}: ${(n.validationErrors ?? []).join(", ")}`);
        });
        return found;
      });
      assert.deepEqual(invalid, []);
    });

    // The editor e2e opens the demo's dialogs; these three node types are not in the demo, so here.
    for (const [id, field, shows, helpPhrase] of [
      ["e2e-method", "#node-input-methods", "setRecipe", "Receives direct-method calls"],
      ["e2e-method-response", "#node-input-statusCode", "200", "Answers the direct-method call"],
      ["e2e-c2d-in", "#node-input-settle", "auto", "Receives the device's cloud-to-device messages"],
    ]) {
      it(`the ${id.slice(4)} edit dialog opens with the flow's device and settings, and its help shows`, async () => {
        await editor.bringToFront();
        await editor
          .locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"] rect.red-ui-flow-node`)
          .dblclick();
        const tray = editor.locator(".red-ui-tray").last();
        await editor.locator(field).waitFor({ state: "visible" });
        assert.equal(await editor.locator(field).inputValue(), shows, `${field} of ${id}`);
        const device = await editor
          .locator("#node-input-device")
          .evaluate((element) =>
            element instanceof HTMLSelectElement
              ? (element.selectedOptions[0]?.textContent ?? "").trim()
              : "",
          );
        assert.equal(device, "flow gateway");
        await tray.locator(".red-ui-tray-footer-left button:has(i.fa-book)").click();
        await editor
          .locator(".red-ui-sidebar-help-stack .red-ui-help", { hasText: helpPhrase })
          .last()
          .waitFor({ state: "visible" });
        await saveScreenshot(editor, artifactsDir, `5-dialog-${id.slice(4)}`);
        await editor.locator("#node-dialog-cancel").click();
        await editor.locator(".red-ui-tray").waitFor({ state: "detached" });
      });
    }

    it("neither page raised script errors", () => {
      assert.deepEqual(scriptErrors, []);
    });
  },
);
