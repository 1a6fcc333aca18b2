// The Node-RED editor in a real Chromium with our package loaded from the repository root (the built lib/):
// palette, edit dialogs and help, the TPM "Read TPM identity" button against a real swtpm, Import > Examples,
// and the end-to-end demo deployed against the local emulator, with a desired-property change made on the
// emulator's own page arriving in the flow's debug output. Screenshots of every step: test-artifacts/e2e/.
import { describe, it, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { startEmulator, type Emulator } from "../../src/emulator/index.js";
import { TpmSecurityClient } from "../../src/tpm/index.js";
import {
  chromiumUnavailableReason,
  launchTestBrowser,
  saveScreenshot,
  waitUntilSettled,
  type TestBrowser,
} from "../support/e2e-browser.js";
import { removeQuietly, startNodeRed, type NodeRedProcess } from "../support/e2e-node-red.js";
import { startTestTpm, type TestTpm } from "../support/swtpm.js";

const repoRoot = join(__dirname, "..", "..");
const artifactsDir = join(repoRoot, "test-artifacts", "e2e");
const MODULE_NAME = "@provisio/node-red-azure-iot";
const CATEGORY = "Azure IoT";
const DEMO_EXAMPLE = "end-to-end demo";
const DEMO_TAB = "Azure IoT demo";
const STEP_MS = 15_000;
const CONNECT_BOUND_MS = 60_000;
/** A value the demo flow never had: seeing it in the debug output proves the change went through. */
const NEW_TELEMETRY_INTERVAL = 7;

const FLOW_NODES = [
  "provisio-azure-provision",
  "provisio-azure-telemetry",
  "provisio-azure-twin-in",
  "provisio-azure-twin-report",
  "provisio-azure-method",
  "provisio-azure-method-response",
  "provisio-azure-c2d-in",
];

/** The end-of-line station's flow nodes: registered type, and the file name of their catalogue and icon. */
const STATION_NODES = [
  { type: "provisio-azure-tpm-identity", file: "azure-iot-tpm-identity" },
  { type: "provisio-azure-dps-enrollment", file: "azure-iot-dps-enrollment" },
];

/**
 * Per node type: a field of its edit dialog with the value the imported demo gives it (a `select` is read by
 * the label of its chosen option), and a phrase from its help text (nodes/locales/en-US/<type>.html).
 */
const EDITORS: Array<{ type: string; config: boolean; field: string; shows: string; helpPhrase: string }> = [
  {
    type: "provisio-azure-provision",
    config: false,
    field: "#node-input-device",
    shows: "demo gateway",
    helpPhrase: "Provisions the device through DPS",
  },
  {
    type: "provisio-azure-telemetry",
    config: false,
    field: "#node-input-device",
    shows: "demo gateway",
    helpPhrase: "device-to-cloud (telemetry) message",
  },
  {
    type: "provisio-azure-twin-in",
    config: false,
    field: "#node-input-output",
    shows: "patch",
    helpPhrase: "Emits the device twin's desired properties",
  },
  {
    type: "provisio-azure-twin-report",
    config: false,
    field: "#node-input-device",
    shows: "demo gateway",
    helpPhrase: "patch of the device twin's reported properties",
  },
  {
    type: "provisio-azure-dps",
    config: true,
    field: "#node-config-input-globalEndpoint",
    shows: "${AZURE_IOT_DPS_ENDPOINT}",
    helpPhrase: "Device Provisioning Service (DPS)",
  },
  {
    type: "provisio-azure-tpm",
    config: true,
    field: "#node-config-input-kind",
    shows: "swtpm",
    helpPhrase: "TPM attestation keeps no key on disk",
  },
  {
    type: "provisio-azure-device",
    config: true,
    field: "#node-config-input-tpm",
    shows: "swtpm (demo)",
    helpPhrase: "how it proves who it is to DPS",
  },
];

const exampleNames = readdirSync(join(repoRoot, "examples"))
  .filter((file) => file.endsWith(".json"))
  .map((file) => file.slice(0, -".json".length))
  .sort();

/** The node set (file name, package.json "node-red" key) that registers a node type. */
const nodeSetOf = (type: string): string => type.replace(/^provisio-azure-/, "azure-iot-");

/** A text from a node set's message catalogue (nodes/locales/en-US/<node set>.json), by its dotted key. */
function catalogueText(nodeSet: string, key: string): string {
  const catalogue = JSON.parse(
    readFileSync(join(repoRoot, "nodes", "locales", "en-US", `${nodeSet}.json`), "utf8"),
  ) as unknown;
  const text = key
    .split(".")
    .reduce<unknown>((at, part) => (at as Record<string, unknown> | undefined)?.[part], catalogue);
  assert.equal(typeof text, "string", `${nodeSet}.json has ${key}`);
  return text as string;
}

/** Every text of a node set's catalogue by dotted key, in each language we ship. */
function catalogueTexts(nodeSet: string): Record<string, string[]> {
  const texts: Record<string, string[]> = {};
  const walk = (at: unknown, prefix: string): void => {
    if (typeof at === "string") (texts[prefix] ??= []).push(at);
    else
      for (const [key, value] of Object.entries(at as object)) walk(value, prefix ? `${prefix}.${key}` : key);
  };
  for (const language of ["en-US", "de", "ja"]) {
    walk(
      JSON.parse(readFileSync(join(repoRoot, "nodes", "locales", language, `${nodeSet}.json`), "utf8")),
      "",
    );
  }
  return texts;
}

/**
 * What the open edit tray cuts off: a select option (in any of our languages, measured in the select's own
 * font) wider than its select, or a form label with a word wider than the label.
 */
async function cutTexts(page: Page, nodeSet: string): Promise<string[]> {
  return page.evaluate((texts) => {
    const problems: string[] = [];
    const tray = document.querySelectorAll(".red-ui-tray");
    const form = tray[tray.length - 1];
    const measure = document.createElement("canvas").getContext("2d")!;
    for (const select of Array.from(form.querySelectorAll<HTMLSelectElement>(".form-row select"))) {
      if (select.offsetParent === null) continue; // a row hidden for the current choice
      const style = getComputedStyle(select);
      measure.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      // Room for the text: the select less its padding and the drop-down arrow.
      const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 16;
      for (const option of Array.from(select.options)) {
        const key = option.getAttribute("data-i18n");
        for (const text of key ? (texts[key] ?? [option.text]) : [option.text]) {
          const width = measure.measureText(text).width;
          if (width > room) problems.push(`#${select.id}: "${text}" needs ${Math.ceil(width)} px of ${room}`);
        }
      }
    }
    for (const label of Array.from(form.querySelectorAll<HTMLLabelElement>(".form-row > label"))) {
      if (label.offsetParent === null) continue;
      if (label.scrollWidth > label.clientWidth + 1)
        problems.push(`label "${label.innerText.trim()}" is cut`);
    }
    return problems;
  }, catalogueTexts(nodeSet));
}

/** The part of the editor's global `RED` that the page functions below use (they run in the browser). */
declare const RED: {
  nodes: {
    eachNode(cb: (n: { id: string; type: string }) => void): void;
    eachConfig(cb: (n: { id: string; type: string }) => void): void;
    node(id: string): { id: string; type: string } | null;
  };
  utils: {
    getNodeLabel(node: { id: string; type: string }, fallback: string): string;
  };
};

const normalise = (text: string) => text.replace(/\s+/g, " ").trim();

/** The id of the one node of `type` in the editor's workspace (ids may change on import). */
async function nodeIdOfType(page: Page, type: string): Promise<string> {
  const ids = await page.evaluate((wanted) => {
    const found: string[] = [];
    RED.nodes.eachNode((n) => {
      if (n.type === wanted) found.push(n.id);
    });
    RED.nodes.eachConfig((n) => {
      if (n.type === wanted) found.push(n.id);
    });
    return found;
  }, type);
  assert.equal(ids.length, 1, `exactly one ${type} node in the editor`);
  return ids[0];
}

function canvasNode(page: Page, id: string) {
  return page.locator(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${id}"]`);
}

/** Node-RED's own view of our module: every declared node set loaded without error (a broken build shows here). */
async function assertOurNodesLoaded(nodeRed: NodeRedProcess): Promise<void> {
  const answer = await fetch(`${nodeRed.url}/nodes`, { headers: { Accept: "application/json" } });
  assert.equal(answer.status, 200, "GET /nodes");
  const sets = (await answer.json()) as Array<{
    module?: string;
    name: string;
    types: string[];
    err?: string;
  }>;
  const ours = sets.filter((set) => set.module === MODULE_NAME);
  const problems = ours.filter((set) => set.err).map((set) => `${set.name}: ${set.err}`);
  assert.deepEqual(problems, [], `Node-RED could not load our nodes\n${nodeRed.log().slice(-3000)}`);
  const packageJson = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    "node-red": { nodes: Record<string, string> };
  };
  const declared = Object.keys(packageJson["node-red"].nodes).sort();
  assert.deepEqual(
    ours.map((set) => set.name).sort(),
    declared,
    "Node-RED loaded every node set package.json declares",
  );
  assert.deepEqual(
    ours.flatMap((set) => set.types.map((type) => `${set.name} -> ${type}`)).sort(),
    declared.map((set) => `${set} -> ${set.replace(/^azure-iot-/, "provisio-azure-")}`),
    "each node set registers its one provisio-azure-* type",
  );
}

/**
 * Puts the editor back to its resting state (no edit tray, no dialog) so that one failed step does not make
 * every following step wait for its own timeout.
 */
async function closeLeftoverDialogs(page: Page): Promise<void> {
  const trays = page.locator(".red-ui-tray");
  for (let attempt = 0; attempt < 5; attempt++) {
    const open = await trays.count();
    if (open === 0) break;
    await trays
      .last()
      .locator("#node-dialog-cancel, #node-config-dialog-cancel")
      .first()
      .click({ timeout: 2_000 })
      .catch(() => page.keyboard.press("Escape"));
    await page
      .waitForFunction((count) => document.querySelectorAll(".red-ui-tray").length < count, open, {
        timeout: 3_000,
      })
      .catch(() => undefined);
  }
  if (await page.locator(".ui-dialog:visible").count()) await page.keyboard.press("Escape");
}

/** Opens the edit tray of a node: double-click on the canvas, or in the Configuration nodes sidebar. */
async function openEditor(page: Page, type: string, config: boolean): Promise<void> {
  const id = await nodeIdOfType(page, type);
  if (config) {
    await page.locator("#red-ui-header-button-sidemenu").click();
    await page.locator("#menu-item-config-nodes").click();
    const label = await page.evaluate(
      (nodeId) => RED.utils.getNodeLabel(RED.nodes.node(nodeId)!, nodeId),
      id,
    );
    // Node-RED 4 has one sidebar (#red-ui-sidebar-content); Node-RED 5 has sections (.red-ui-sidebar-content).
    const entry = page
      .locator("#red-ui-sidebar-content, .red-ui-sidebar-content")
      .locator(".red-ui-palette-node-config", { hasText: label })
      .filter({ visible: true })
      .first();
    await entry.waitFor({ state: "visible", timeout: STEP_MS });
    await entry.dblclick();
  } else {
    await canvasNode(page, id).locator("rect.red-ui-flow-node").dblclick();
  }
  await waitUntilSettled(page.locator(".red-ui-tray").last());
}

async function closeEditor(page: Page, config: boolean): Promise<void> {
  await page.locator(config ? "#node-config-dialog-cancel" : "#node-dialog-cancel").click();
  await page.locator(".red-ui-tray").waitFor({ state: "detached", timeout: STEP_MS });
}

const skipReason = chromiumUnavailableReason();

describe("the Node-RED editor with our nodes, in Chromium", { skip: skipReason ?? false }, () => {
  let tpm: TestTpm | undefined;
  let emulatorDir: string | undefined;
  let emulator: Emulator | undefined;
  let nodeRed: NodeRedProcess | undefined;
  let browser: TestBrowser | undefined;
  let page: Page;
  let registrationId: string;
  /** Set by the deploy step: the desired-property step needs the connected demo. */
  let demoConnected = false;
  const scriptErrors: string[] = [];

  before(
    async () => {
      if (
        !existsSync(join(repoRoot, "lib", "nodes")) ||
        !existsSync(join(repoRoot, "nodes", "azure-iot-dps.js"))
      ) {
        throw new Error(
          "lib/ or nodes/*.js is missing: run `npm run build` (npm test does) before the e2e suite",
        );
      }
      // Screenshots of this run only: stale ones from an earlier run would mislead.
      await rm(artifactsDir, { recursive: true, force: true });
      await mkdir(artifactsDir, { recursive: true });
      tpm = await startTestTpm();
      const client = new TpmSecurityClient(tpm.connection);
      let endorsementKey: string;
      try {
        registrationId = await client.getRegistrationId();
        endorsementKey = (await client.getEndorsementKey()).toString("base64");
      } finally {
        // swtpm serves one client at a time: Node-RED needs it next.
        await client.close();
      }

      emulatorDir = await mkdtemp(join(tmpdir(), "provisio-e2e-emulator-"));
      emulator = await startEmulator({ dataDir: emulatorDir });
      emulator.dps.store.putIndividualEnrollment({
        registrationId,
        attestation: { type: "tpm", tpm: { endorsementKey } },
      });

      nodeRed = await startNodeRed({
        packageDir: repoRoot,
        env: {
          AZURE_IOT_DPS_ENDPOINT: emulator.endpoints.dps.amqp,
          AZURE_IOT_ID_SCOPE: emulator.idScope,
          AZURE_IOT_CA_FILE: emulator.caFile,
          SWTPM_HOST: tpm.connection.host,
          SWTPM_PORT: String(tpm.connection.port),
          SWTPM_CTRL_PORT: String(tpm.connection.ctrlPort),
        },
        startTimeoutMs: 25_000,
      });

      await assertOurNodesLoaded(nodeRed);

      browser = await launchTestBrowser();
      page = browser.context.pages()[0] ?? (await browser.context.newPage());
      page.setDefaultTimeout(STEP_MS);
      page.on("pageerror", (error) => scriptErrors.push(error.message));
      await page.goto(`${nodeRed.url}/`);
      await page
        .locator('.red-ui-palette-node[data-palette-type="provisio-azure-provision"]')
        .waitFor({ timeout: 20_000 });
    },
    { timeout: 90_000 },
  );

  beforeEach(async () => {
    if (page) await closeLeftoverDialogs(page);
  });

  after(async () => {
    await browser?.close();
    await nodeRed?.stop();
    await emulator?.close().catch(() => undefined);
    await removeQuietly(emulatorDir);
    await tpm?.dispose().catch(() => undefined);
  });

  it(`the palette shows each of our flow nodes in "${CATEGORY}", with icons that load`, async () => {
    const header = page.locator(".red-ui-palette-header", { hasText: CATEGORY });
    await header.waitFor();
    const category = page.locator(".red-ui-palette-category", { has: header });
    // The first nodes keep their catalogue under the node set's name, the station's under the type.
    const paletteEntries = [
      ...FLOW_NODES.map((type) => ({ type, file: nodeSetOf(type), key: nodeSetOf(type) })),
      ...STATION_NODES.map(({ type, file }) => ({ type, file, key: type })),
    ];
    for (const { type, file, key } of paletteEntries) {
      const paletteNode = category.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
      await paletteNode.waitFor({ state: "visible" });
      assert.equal(
        normalise(await paletteNode.innerText()),
        catalogueText(file, `${key}.paletteLabel`),
        `${type}'s palette label`,
      );
      const iconStyle = await paletteNode.locator(".red-ui-palette-icon").getAttribute("style");
      const iconUrl = /url\("?([^")]+)"?\)/.exec(iconStyle ?? "")?.[1];
      assert.ok(iconUrl, `${type} has an icon in the palette`);
      assert.match(
        iconUrl,
        new RegExp(`/${file}\\.svg$`),
        `${type} uses its own icon, not Node-RED's fallback`,
      );
      const answer = await fetch(new URL(iconUrl, `${nodeRed!.url}/`));
      assert.equal(answer.status, 200, `${iconUrl} loads`);
      assert.match(answer.headers.get("content-type") ?? "", /image\/svg\+xml/);
      assert.match(await answer.text(), /<svg[\s>]/);
    }
    assert.equal(
      await category.locator(".red-ui-palette-node").count(),
      FLOW_NODES.length + STATION_NODES.length,
      `"${CATEGORY}" holds exactly our flow nodes`,
    );
    await header.scrollIntoViewIfNeeded();
    await saveScreenshot(page, artifactsDir, "1-palette");
  });

  it("Node-RED serves our German and Japanese texts and help to an editor in that language", async () => {
    for (const [language, readIdentity, helpPhrase] of [
      ["de", "TPM-Identität lesen", "Der TPM-Nachweis legt keinen Schlüssel"],
      ["ja", "TPM の ID を読み取る", "TPM 構成証明ではディスクに鍵を置きません"],
    ]) {
      const catalogs = await fetch(`${nodeRed!.url}/nodes/messages?lng=${language}`);
      assert.equal(catalogs.status, 200);
      const ours = (
        (await catalogs.json()) as Record<string, Record<string, { identity?: { read?: string } }>>
      )[`${MODULE_NAME}/azure-iot-tpm`];
      assert.equal(ours?.["azure-iot-tpm"]?.identity?.read, readIdentity, `${language} catalog`);
      const nodeHtml = await fetch(`${nodeRed!.url}/nodes`, {
        headers: { Accept: "text/html", "Accept-Language": language },
      });
      assert.ok((await nodeHtml.text()).includes(helpPhrase), `${language} help of provisio-azure-tpm`);
    }
  });

  it("Import > Examples lists our nine example flows, and imports the end-to-end demo", async () => {
    assert.equal(exampleNames.length, 9, "the repository has nine example flows");
    await page.locator("#red-ui-header-button-sidemenu").click();
    await page.locator("#menu-item-import").click();
    await page.locator("#red-ui-clipboard-dialog-import-tabs .red-ui-tab", { hasText: "Examples" }).click();
    const library = page.locator("#red-ui-clipboard-dialog-import-tab-examples");
    await library.locator(".red-ui-treeList-label", { hasText: MODULE_NAME }).click();
    for (const name of exampleNames) {
      await library
        .locator(".red-ui-treeList-label", {
          hasText: new RegExp(`^\\s*${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`),
        })
        .waitFor({ state: "visible" });
    }
    await saveScreenshot(page, artifactsDir, "4-import-examples");

    await library.locator(".red-ui-treeList-label", { hasText: DEMO_EXAMPLE }).click();
    await page.locator("#red-ui-clipboard-dialog-ok").click();
    await page.waitForFunction(() => {
      const types = new Set<string>();
      RED.nodes.eachNode((n) => types.add(n.type));
      RED.nodes.eachConfig((n) => types.add(n.type));
      return [
        "provisio-azure-provision",
        "provisio-azure-device",
        "provisio-azure-tpm",
        "provisio-azure-dps",
      ].every((t) => types.has(t));
    });
    await page.locator("#red-ui-workspace-tabs .red-ui-tab", { hasText: DEMO_TAB }).click();
    await canvasNode(page, await nodeIdOfType(page, "provisio-azure-provision")).waitFor({
      state: "visible",
    });
    // Nodes are placed by their centre: a long comment placed too far left is cut off by the canvas edge.
    const offCanvas = await page.evaluate(() => {
      const cut: string[] = [];
      RED.nodes.eachNode((n) => {
        const node = n as unknown as { type: string; name?: string; x: number; w?: number };
        if (node.w !== undefined && node.x - node.w / 2 < 0) cut.push(`${node.type} "${node.name ?? ""}"`);
      });
      return cut;
    });
    assert.deepEqual(offCanvas, [], "every node of the demo is fully on the canvas");
    await saveScreenshot(page, artifactsDir, "4-demo-imported");
  });

  for (const editor of EDITORS) {
    it(`the ${editor.type} edit dialog opens and its help shows in the help sidebar`, async () => {
      await openEditor(page, editor.type, editor.config);
      const field = page.locator(editor.field);
      await field.waitFor({ state: "visible" });
      const shown = await field.evaluate((element) =>
        element instanceof HTMLSelectElement
          ? [element.value, element.selectedOptions[0]?.textContent?.trim() ?? ""]
          : [(element as HTMLInputElement).value],
      );
      assert.ok(
        shown.includes(editor.shows),
        `${editor.field} shows ${editor.shows} (got ${shown.join(" / ")})`,
      );
      assert.deepEqual(await cutTexts(page, nodeSetOf(editor.type)), [], "nothing in the dialog is cut off");
      // The tray's book button brings the help sidebar to the front, on this node's help.
      await page
        .locator(".red-ui-tray")
        .last()
        .locator(".red-ui-tray-footer-left button:has(i.fa-book)")
        .click();
      const help = page.locator(".red-ui-sidebar-help-stack .red-ui-help").last();
      await help.waitFor({ state: "visible" });
      await page.waitForFunction(
        (phrase) =>
          Array.from(document.querySelectorAll(".red-ui-sidebar-help-stack .red-ui-help")).some((el) =>
            (el.textContent ?? "").replace(/\s+/g, " ").includes(phrase),
          ),
        editor.helpPhrase,
      );
      const helpText = normalise(await help.innerText());
      assert.ok(helpText.length > 80, `the ${editor.type} help is not empty`);
      assert.ok(helpText.includes(editor.helpPhrase), `the ${editor.type} help says "${editor.helpPhrase}"`);
      await saveScreenshot(page, artifactsDir, `2-edit-${editor.type}`);
      await closeEditor(page, editor.config);
    });
  }

  it("the TPM config's Read TPM identity button shows the swtpm's registration id and endorsement key", async () => {
    await openEditor(page, "provisio-azure-tpm", true);
    await page.locator("#azure-iot-tpm-read-identity").click();
    const shownId = page.locator("#azure-iot-tpm-registration-id");
    await shownId.waitFor({ state: "visible" });
    assert.equal(await shownId.inputValue(), registrationId);
    const endorsementKey = await page.locator("#azure-iot-tpm-ek").inputValue();
    assert.ok(endorsementKey.length > 100, "the endorsement key field is filled");
    const enrolled = emulator!.dps.store.getIndividualEnrollment(registrationId);
    assert.equal(
      endorsementKey,
      enrolled?.attestation.tpm?.endorsementKey,
      "the editor shows the same endorsement key the test read from the TPM",
    );
    // The editor's own texts come from our catalogue (a wrong i18n namespace shows the raw key instead).
    assert.equal(
      await page.locator("#azure-iot-tpm-copy-registration-id button").getAttribute("title"),
      catalogueText("azure-iot-tpm", "azure-iot-tpm.identity.copy"),
    );
    await saveScreenshot(page, artifactsDir, "3-tpm-identity");
    await closeEditor(page, true);
  });

  it(
    "deploying the imported demo turns the provision node green: connected",
    { timeout: CONNECT_BOUND_MS + 30_000 },
    async () => {
      await page.locator("#red-ui-header-button-deploy").click();
      await page
        .locator(".red-ui-notification", { hasText: /deployed/i })
        .first()
        .waitFor();
      const provision = canvasNode(page, await nodeIdOfType(page, "provisio-azure-provision"));
      await provision
        .locator(".red-ui-flow-node-status-label", { hasText: /^connected$/ })
        .waitFor({ timeout: CONNECT_BOUND_MS })
        .catch((error: Error) => {
          throw new Error(`${error.message}\n--- Node-RED output ---\n${nodeRed!.log().slice(-3000)}`);
        });
      assert.match(
        (await provision.locator("rect.red-ui-flow-node-status").getAttribute("class")) ?? "",
        /red-ui-flow-node-status-dot-green/,
      );
      demoConnected = true;
      await saveScreenshot(page, artifactsDir, "5-deployed-connected");
    },
  );

  it(
    "a desired change on the emulator page reaches the flow's debug output",
    { timeout: 60_000 },
    async () => {
      assert.ok(demoConnected, "this step needs the demo deployed and connected by the previous step");
      const emulatorPage = await browser!.context.newPage();
      emulatorPage.setDefaultTimeout(STEP_MS);
      try {
        await emulatorPage.goto(emulator!.ui.url);
        await emulatorPage
          .locator(`#devices [data-device-id="${registrationId}"]`)
          .click({ timeout: 30_000 });
        const desiredEditor = emulatorPage.locator("#desired-editor");
        await desiredEditor.waitFor({ state: "visible" });
        // The page fills the editor from the twin it loads for the selected device.
        await emulatorPage.waitForFunction(() =>
          (document.getElementById("desired-editor") as HTMLTextAreaElement | null)?.value
            .trim()
            .startsWith("{"),
        );
        await desiredEditor.fill(JSON.stringify({ telemetryInterval: NEW_TELEMETRY_INTERVAL }));
        await emulatorPage.locator("#update-desired").click();
        await emulatorPage.locator("#desired-result", { hasText: /Sent/ }).waitFor();
        await emulatorPage
          .locator("#twin-desired", { hasText: `"telemetryInterval": ${NEW_TELEMETRY_INTERVAL}` })
          .waitFor();
        await saveScreenshot(emulatorPage, artifactsDir, "6-emulator-desired");
      } finally {
        await emulatorPage.close();
      }

      await page.bringToFront();
      // The sidebar shows pinned tabs (info, help, debug, ...) as icon buttons: a link in Node-RED 4, a
      // button in the tab bar of Node-RED 5, where a click on the tab already in front hides it.
      if ((await page.locator(".red-ui-debug-content").filter({ visible: true }).count()) === 0) {
        await page
          .locator("#red-ui-tab-debug-link-button")
          .or(page.locator('button[data-tab-id="debug"]'))
          .first()
          .click();
      }
      // The debug sidebar previews the payload object: { telemetryInterval: 7, $version: 2 }.
      const debugMessage = page
        .locator(".red-ui-debug-msg", { hasText: "node: desired properties" })
        .filter({ hasText: new RegExp(`telemetryInterval:\\s*${NEW_TELEMETRY_INTERVAL}\\b`) });
      await debugMessage.first().waitFor({ state: "visible", timeout: 30_000 });
      await debugMessage.first().scrollIntoViewIfNeeded();
      await saveScreenshot(page, artifactsDir, "6-debug-desired");
    },
  );

  it("the editor raised no script errors", () => {
    assert.deepEqual(scriptErrors, []);
  });
});
