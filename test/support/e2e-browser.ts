// Debian's Chromium driven by playwright-core (no browser download), launched the way
// the toolchain notes verified: headless, no sandbox, no GPU, no background requests, a fresh profile.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Locator, type Page } from "playwright-core";
import { removeQuietly } from "./e2e-node-red.js";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumUnavailableReason(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `Chromium is not installed at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
}

export interface TestBrowser {
  readonly context: BrowserContext;
  /** Closes every page and the browser, removes the profile. Safe to call twice. */
  close(): Promise<void>;
}

export async function launchTestBrowser(): Promise<TestBrowser> {
  // playwright-core refuses --user-data-dir in args: a fresh profile goes through launchPersistentContext.
  const profileDir = await mkdtemp(join(tmpdir(), "provisio-e2e-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: CHROMIUM_ARGS,
      timeout: 20_000,
    });
  } catch (error) {
    await removeQuietly(profileDir);
    throw error;
  }
  let closed = false;
  return {
    context,
    close: async () => {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      await removeQuietly(profileDir);
    },
  };
}

/** Waits (bounded) until an element stops moving: trays and dialogs slide in through CSS transitions. */
export async function waitUntilSettled(locator: Locator, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let previous: { x: number; y: number; width: number; height: number } | null = null;
  while (Date.now() < deadline) {
    const box = await locator.boundingBox();
    if (
      previous &&
      box &&
      Math.abs(box.x - previous.x) < 0.5 &&
      Math.abs(box.y - previous.y) < 0.5 &&
      Math.abs(box.width - previous.width) < 0.5
    ) {
      return;
    }
    previous = box;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Saves a screenshot as a test artifact; a failing screenshot never fails the test. */
export async function saveScreenshot(page: Page, dir: string, name: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), timeout: 10_000 }).catch(() => undefined);
}
