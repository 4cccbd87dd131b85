/**
 * The web client on another origin than the API (as when it is deployed to a CDN): the page on a
 * port of its own, the API and the WebSocket API on theirs. Every API call goes through CORS
 * (preflights included), and Server-Timing reaches the page (Timing-Allow-Origin, exposed headers).
 */
import type { Browser, BrowserContext } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { launchBrowser, screenshot, signIn, watchedPage } from "../support/browser.ts";
import { freePort } from "../support/redis-server.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";

let t: TestStack;
let browser: Browser;
let context: BrowserContext;
let pageOrigin: string;

beforeAll(async () => {
  const port = await freePort();
  pageOrigin = `http://127.0.0.1:${port}`;
  t = await startTestStack({
    env: { RATE_LIMIT_PER_SECOND: "0" },
    web: { port },
    cors: { allowedOrigins: [pageOrigin] },
  });
  browser = await launchBrowser();
  context = await browser.newContext();
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await t?.stop();
});

it("works from a page on another origin, through CORS, with Server-Timing visible to it", async () => {
  expect(t.stack.webUrl).toBe(pageOrigin);
  expect(new URL(t.stack.httpUrl).origin).not.toBe(pageOrigin);
  const { page, errors } = await watchedPage(context);
  // What the API answered the page: every answer must name the page's origin (CORS).
  const allowed: (string | undefined)[] = [];
  page.on("response", (r) => {
    if (r.url().startsWith(`${t.stack.httpUrl}/api/`))
      allowed.push(r.headers()["access-control-allow-origin"]);
  });

  await signIn(page, `${pageOrigin}/`, "cors-user");
  await page.getByPlaceholder("New thread title").fill("Across origins");
  await page.getByRole("button", { name: "New thread" }).click();
  await page.getByRole("heading", { name: "Across origins" }).waitFor();
  await page.getByLabel("Message", { exact: true }).fill("sent across origins");
  await page.keyboard.press("Enter");
  await page
    .locator("li.message", { hasText: "sent across origins" })
    .locator(".meta:not(:has(.badge))")
    .waitFor();

  await page.getByRole("button", { name: "Diagnostics" }).click();
  const row = page.locator(".diagnostics tbody tr").first();
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  expect(cells[0]).toMatch(/^201/);
  // cache, queue and total durations from the API's Server-Timing header.
  for (const cell of cells.slice(1)) expect(Number(cell)).toBeGreaterThanOrEqual(0);
  // A POST with a bearer token and JSON is preflighted by the browser: it got here, so it passed.
  expect(allowed.length).toBeGreaterThan(2);
  expect(new Set(allowed)).toEqual(new Set([pageOrigin]));
  await screenshot(page, "cross-origin");
  expect(errors).toEqual([]);
});
