/**
 * Headless Chromium from Debian's `chromium` package (scripts/services.sh installs it), driven by
 * playwright-core with its executable path: no browser download. Each page records its console
 * errors and uncaught exceptions (a test fails on any), and each scenario saves a screenshot under
 * test-output/screenshots/.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const SCREENSHOTS = path.join(ROOT, "test-output", "screenshots");

const executable = (): string => {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  const found = candidates.find((c): c is string => c !== undefined && existsSync(c));
  if (found === undefined) throw new Error("Chromium not found: run `bash scripts/services.sh up chromium`");
  return found;
};

export const launchBrowser = (): Promise<Browser> =>
  chromium.launch({ executablePath: executable(), args: ["--no-sandbox", "--disable-dev-shm-usage"] });

export interface WatchedPage {
  readonly page: Page;
  /** Console errors and page exceptions so far. */
  readonly errors: string[];
}

export const watchedPage = async (context: BrowserContext): Promise<WatchedPage> => {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  return { page, errors };
};

export const screenshot = async (page: Page, name: string): Promise<string> => {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
};

/** Signs in on the local stack's page with a user name. */
export const signIn = async (page: Page, url: string, user: string): Promise<void> => {
  await page.goto(url);
  await page.getByLabel("User name").fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "New thread" }).waitFor();
};
