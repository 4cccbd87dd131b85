/**
 * The web client in headless Chromium against the local stack (page and API on one origin): two
 * tabs live, a dropped connection resumed, a streamed reply and Stop, a reload mid-reply, thread
 * rename/archive/delete, phone width. Every page must end without console errors; every scenario
 * saves a screenshot (test-output/screenshots/).
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DemoAgent } from "../../scripts/local-stack/demo-agent.ts";
import { launchBrowser, screenshot, signIn, type WatchedPage, watchedPage } from "../support/browser.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let browser: Browser;
let agent: DemoAgent;
let context: BrowserContext;
let pages: WatchedPage[] = [];
let url: string;

beforeAll(async () => {
  t = await startTestStack({ env: { RATE_LIMIT_PER_SECOND: "0" }, web: {} });
  url = `${t.stack.webUrl}/`;
  agent = new DemoAgent({
    apiUrl: `${t.stack.httpUrl}/api`,
    wsUrl: t.stack.wsUrl,
    token: () => t.token("demo-agent", ["service"]),
    // Slow enough to see a reply grow, stop it, and reload in the middle of it.
    wordsPerSecond: [6, 6],
    firstWordDelayMs: [0, 0],
    pollIntervalMs: 100,
  });
  await agent.start();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  await t?.stop();
});

const fresh = async (viewport = { width: 1280, height: 800 }): Promise<WatchedPage> => {
  context = await browser.newContext({ viewport });
  const watched = await watchedPage(context);
  pages.push(watched);
  return watched;
};

afterEach(async () => {
  for (const p of pages) expect(p.errors, "console errors").toEqual([]);
  pages = [];
  await context?.close();
});

const newThread = async (page: Page, title: string, agentName = ""): Promise<string> => {
  await page.getByPlaceholder("New thread title").fill(title);
  await page.getByPlaceholder("Agent that answers (e.g. demo)").fill(agentName);
  await page.getByRole("button", { name: "New thread" }).click();
  await page.getByRole("heading", { name: title }).waitFor();
  return /#\/threads\/([0-9a-f-]{36})$/.exec(page.url())?.[1] as string;
};

const send = async (page: Page, text: string): Promise<void> => {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.keyboard.press("Enter");
};

const bubble = (page: Page, text: string) => page.locator("li.message", { hasText: text });

/** The thread's messages as the page lists them. */
const contents = (page: Page) => page.locator("li.message .content").allTextContents();

describe("the web client", () => {
  it("shows each tab of one user the other's messages live", async () => {
    const { page: a } = await fresh();
    await signIn(a, url, "tabs-user");
    const threadId = await newThread(a, "Two tabs");
    const second = await watchedPage(context);
    pages.push(second);
    const b = second.page;
    await b.goto(`${url}#/threads/${threadId}`);
    await b.getByRole("heading", { name: "Two tabs" }).waitFor();
    await b
      .locator('[data-connection="online"]')
      .or(b.getByRole("button", { name: "Diagnostics" }))
      .first()
      .waitFor();

    await send(a, "hello from the first tab");
    await bubble(b, "hello from the first tab").waitFor();
    await send(b, "and back from the second");
    await bubble(a, "and back from the second").waitFor();

    for (const page of [a, b]) {
      await expect
        .poll(() => contents(page))
        .toEqual(["hello from the first tab", "and back from the second"]);
      await expect.poll(() => page.locator("li.message.pending").count()).toBe(0);
    }
    await screenshot(a, "two-tabs");
  });

  it("resumes after a dropped connection with nothing missing and nothing twice", async () => {
    const { page, errors } = await fresh();
    await signIn(page, url, "offline-user");
    const threadId = await newThread(page, "Dropped connection");
    await send(page, "before the drop");
    await bubble(page, "before the drop").locator(".meta:not(:has(.badge))").waitFor();
    const token = await t.token("offline-user");

    await context.setOffline(true);
    expect(t.stack.websocket.dropAll()).toBeGreaterThan(0);
    await page
      .getByRole("status")
      .filter({ hasText: /Offline|Connecting/ })
      .waitFor();
    await screenshot(page, "offline");
    const missed = ["while away 1", "while away 2", "while away 3"];
    await t.postMessages(token, threadId, missed);
    await context.setOffline(false);

    await expect.poll(() => contents(page), { timeout: 15_000 }).toEqual(["before the drop", ...missed]);
    await page
      .getByRole("status")
      .filter({ hasText: /Offline|Connecting/ })
      .waitFor({ state: "detached" });
    await send(page, "after the drop");
    await expect.poll(() => contents(page)).toEqual(["before the drop", ...missed, "after the drop"]);
    // Failed connection attempts while offline are the browser's own network errors, not the page's.
    const own = errors.filter(
      (e) => !/WebSocket connection|ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(e),
    );
    errors.length = 0;
    errors.push(...own);
  });

  it("streams an assistant reply as it arrives, and Stop stops it", async () => {
    const { page } = await fresh();
    await signIn(page, url, "stream-user");
    const threadId = await newThread(page, "Streaming", "demo");
    await send(page, "Tell me about Lisbon, please, at length.");
    const reply = page.locator('li.message.assistant[data-state="streaming"]');
    await reply.waitFor({ timeout: 15_000 });
    await expect
      .poll(async () => (await reply.locator(".content").textContent())?.length ?? 0)
      .toBeGreaterThan(20);
    await screenshot(page, "streaming");

    await reply.getByRole("button", { name: "Stop" }).click();
    const stopped = page.locator('li.message.assistant[data-state="cancelled"]');
    await stopped.waitFor();
    await stopped.locator(".badge", { hasText: "stopped" }).waitFor();
    const id = (await stopped.getAttribute("data-message-id")) as string;
    const token = await t.token("stream-user");
    const stored = await waitFor(
      async () => {
        const res = await t.request<{ state: string }>("GET", `/api/messages/${id}`, { token });
        return res.body.state === "cancelled" ? res.body : undefined;
      },
      { what: "the reply cancelled" },
    );
    expect(stored.state).toBe("cancelled");
    // Thumbs on a reply that ended.
    await stopped.getByRole("button", { name: "Good reply" }).click();
    await expect
      .poll(() => stopped.getByRole("button", { name: "Good reply" }).getAttribute("aria-pressed"))
      .toBe("true");
    expect(threadId).toBeTruthy();
  });

  it("keeps a reply in progress across a page reload, and it goes on to the end", async () => {
    const { page } = await fresh();
    await signIn(page, url, "reload-user");
    await newThread(page, "Reload", "demo");
    await send(page, "Describe Porto in a few sentences.");
    const streaming = page.locator('li.message.assistant[data-state="streaming"] .content');
    await streaming.waitFor({ timeout: 15_000 });
    await expect.poll(async () => (await streaming.textContent())?.length ?? 0).toBeGreaterThan(10);
    const before = (await streaming.textContent()) ?? "";

    await page.reload();
    await page.getByRole("heading", { name: "Reload" }).waitFor();
    const reply = page.locator("li.message.assistant .content");
    await expect.poll(async () => ((await reply.textContent()) ?? "").startsWith(before)).toBe(true);
    await screenshot(page, "reload-mid-reply");
    const done = page.locator('li.message.assistant[data-state="complete"] .content');
    await done.waitFor({ timeout: 30_000 });
    expect(((await done.textContent()) ?? "").length).toBeGreaterThan(before.length);
  });

  it("renames, archives, restores and deletes a thread", async () => {
    const { page } = await fresh();
    page.on("dialog", (d) => void d.accept());
    await signIn(page, url, "lifecycle-user");
    const threadId = await newThread(page, "Draft");
    await send(page, "keep me");
    await bubble(page, "keep me").waitFor();

    await page.getByRole("button", { name: "Rename" }).click();
    await page.getByLabel("Thread title", { exact: true }).fill("Trip to Lisbon");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Trip to Lisbon" }).waitFor();
    await page.getByRole("navigation").getByText("Trip to Lisbon").waitFor();

    await page.getByRole("button", { name: "Archive", exact: true }).click();
    await page.getByRole("navigation").getByText("Trip to Lisbon").waitFor({ state: "detached" });
    await page.getByLabel("Show").selectOption("true");
    await page.getByRole("navigation").getByText("Trip to Lisbon").waitFor();
    await screenshot(page, "archived");
    await page.getByRole("button", { name: "Unarchive" }).click();
    await page.getByRole("button", { name: "Archive", exact: true }).waitFor();

    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByText("Pick a thread, or start a new one.").waitFor();
    await page.getByLabel("Show").selectOption("any");
    await expect.poll(() => page.getByRole("navigation").getByText("Trip to Lisbon").count()).toBe(0);
    const token = await t.token("lifecycle-user");
    expect((await t.request("GET", `/api/threads/${threadId}`, { token })).status).toBe(404);
    await screenshot(page, "deleted");
  });

  it("sends once when the answer to a send is lost: the retry carries the same client id", async () => {
    const { page, errors } = await fresh();
    await signIn(page, url, "retry-user");
    const threadId = await newThread(page, "Lost answer");
    // The first send reaches the API and is stored, but its answer never reaches the page.
    let lost = 0;
    await page.route(`**/api/threads/${threadId}/messages`, async (route) => {
      if (route.request().method() === "POST" && lost++ === 0) {
        await route.fetch();
        await route.abort("connectionreset");
        return;
      }
      await route.continue();
    });
    await send(page, "sent exactly once");
    // The retry goes out (the live event may show the message before its answer does).
    await expect.poll(() => lost).toBe(2);
    await bubble(page, "sent exactly once").locator(".meta:not(:has(.badge))").waitFor();
    const token = await t.token("retry-user");
    const stored = await t.request<{ messages: { content: string }[] }>(
      "GET",
      `/api/threads/${threadId}/messages`,
      {
        token,
      },
    );
    expect(stored.body.messages.map((m) => m.content)).toEqual(["sent exactly once"]);
    await expect.poll(() => contents(page)).toEqual(["sent exactly once"]);
    // The aborted request is the test's doing: the browser reports it as a failed load.
    const own = errors.filter((e) => !/Failed to load resource/.test(e));
    errors.length = 0;
    errors.push(...own);
  });

  it("loads older messages as the reader scrolls up", async () => {
    const { page } = await fresh();
    await signIn(page, url, "history-user");
    const threadId = await newThread(page, "Long history");
    const token = await t.token("history-user");
    await t.postMessages(
      token,
      threadId,
      Array.from({ length: 45 }, (_, i) => `line ${i + 1}`),
    );
    await page.reload();
    await bubble(page, "line 45").waitFor();
    // The newest page holds 30: the oldest lines come with scrolling up.
    expect(await contents(page)).not.toContain("line 1");
    await page.locator(".messages").evaluate((el) => {
      el.scrollTop = 0;
    });
    await expect.poll(() => contents(page)).toEqual(Array.from({ length: 45 }, (_, i) => `line ${i + 1}`));
  });

  it("works at phone width, by keyboard", async () => {
    const { page } = await fresh({ width: 390, height: 844 });
    await page.goto(url);
    // The user name field has the focus: no mouse from here on.
    await page.getByLabel("User name").waitFor();
    await page.keyboard.type("phone-user");
    await page.keyboard.press("Enter");
    await page.getByRole("button", { name: "New thread" }).waitFor();
    await page.getByPlaceholder("New thread title").focus();
    await page.keyboard.type("On the phone");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "On the phone" }).waitFor();
    await page.getByLabel("Message", { exact: true }).focus();
    await page.keyboard.type("typed on a phone");
    await page.keyboard.press("Enter");
    await bubble(page, "typed on a phone").waitFor();
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, "phone");
  });
});
