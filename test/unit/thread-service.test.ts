import { describe, expect, it } from "vitest";
import {
  BadRequestError,
  NotFoundError,
  RateLimitedError,
  ServiceUnavailableError,
} from "../../lambdas/core/errors.ts";
import { decodeThreadCursor, encodeThreadCursor } from "../../lambdas/core/thread-service.ts";
import { isUuid } from "../../lambdas/core/validation.ts";
import { createWorld, makeMessage, postInput, service, user } from "../support/fakes.ts";
import { caught } from "./caught.ts";

const ID = "0196a0b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
const alice = user("alice");

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64url");

const expectInvalidCursor = async (work: () => unknown): Promise<void> => {
  const error = await caught(work);
  expect(error).toBeInstanceOf(BadRequestError);
  expect(error).toMatchObject({ kind: "bad_request", code: "invalid_cursor" });
};

describe("thread cursors", () => {
  it("round-trip through encode and decode", () => {
    const cursor = encodeThreadCursor({ created_at_ms: 1_750_000_000_123, id: ID });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeThreadCursor(cursor)).toEqual({ created_at_ms: 1_750_000_000_123, id: ID });
  });

  it.each([
    ["garbage", "!!!not base64!!!"],
    ["no separator", b64("1750000000000")],
    ["an id that is not a UUID", b64("1750000000000.abc")],
    ["a negative timestamp", b64(`-5.${ID}`)],
    ["a fractional timestamp", b64(`1.5.${ID}`)],
    ["a timestamp that is not a number", b64(`soon.${ID}`)],
    ["an unsafe integer timestamp", b64(`99999999999999999999.${ID}`)],
    ["the empty string", ""],
  ])("refuses %s with 400 invalid_cursor", async (_what, cursor) => {
    await expectInvalidCursor(() => decodeThreadCursor(cursor));
  });

  it("refuses a cursor whose timestamp part is empty", async () => {
    // Never returned by the API (encode always writes the digits), so it must not decode.
    await expectInvalidCursor(() => decodeThreadCursor(b64(`.${ID}`)));
  });
});

describe("ThreadService.create", () => {
  it("creates a thread owned by the caller, stores it and caches it", async () => {
    const w = createWorld();
    const now = w.clock.now();

    const thread = await w.threadService.create(alice, { title: "Plans", metadata: { a: 1 } });

    expect(isUuid(thread.id)).toBe(true);
    expect(thread).toEqual({
      id: thread.id,
      owner_id: "alice",
      title: "Plans",
      metadata: { a: 1 },
      created_at: Math.floor(now / 1000),
      created_at_ms: now,
    });
    expect(w.threads.rows.get(thread.id)).toEqual(thread);
    // A new thread's hot state is complete from the start: nothing of it can exist anywhere else.
    expect(w.cache.callsTo("install")).toEqual([[thread, 0, true]]);
    expect(await w.cache.getThread(thread.id)).toEqual(thread);
  });

  it("leaves a thread whose first messages the hot tier serves without asking PostgreSQL", async () => {
    const w = createWorld();
    const thread = await w.threadService.create(alice, { title: null, metadata: {} });
    const { message, position } = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("first"),
    });
    expect(position).toMatchObject({ pos: 1 });
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page).toMatchObject({ source: "cache", value: { messages: [message], next_cursor: null } });
    expect(w.messages.callsTo("history")).toEqual([]);
    expect(w.messages.callsTo("findById")).toEqual([]);
  });

  it("still creates the thread when the cache is down, with a warning", async () => {
    const w = createWorld();
    w.redisDown();
    const thread = await w.threadService.create(alice, { title: null, metadata: {} });
    expect(w.threads.rows.get(thread.id)).toEqual(thread);
    expect(w.diagnostics.messages()).toContain("could not cache new thread");
  });

  it("answers 503 when the thread store is down", async () => {
    const w = createWorld();
    w.threads.down = true;
    const error = await caught(w.threadService.create(alice, { title: null, metadata: {} }));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ code: "service_unavailable", message: "Thread store unavailable" });
    expect(w.cache.callsTo("install")).toEqual([]);
  });

  it("refuses a user over the request budget with 429 before creating anything", async () => {
    const w = createWorld();
    w.rateLimiter.refuseFor = 2.2;
    const error = await caught(w.threadService.create(alice, { title: null, metadata: {} }));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toMatchObject({ kind: "rate_limited", retryAfterSeconds: 3 });
    expect(w.threads.rows.size).toBe(0);
  });
});

describe("ThreadService.list", () => {
  const seed = () => {
    const w = createWorld();
    const mine = [5, 4, 3, 2, 1].map((i) => w.seedThread("alice", { created_at_ms: 1_700_000_000_000 + i }));
    w.seedThread("bob");
    return { w, mine };
  };

  it("pages through the caller's threads, newest first, with an opaque cursor", async () => {
    const { w, mine } = seed();

    const first = await w.threadService.list(alice, { limit: 2 });
    expect(first.threads).toEqual(mine.slice(0, 2));
    expect(first.next_cursor).not.toBeNull();

    const second = await w.threadService.list(alice, { limit: 2, cursor: first.next_cursor ?? "" });
    expect(second.threads).toEqual(mine.slice(2, 4));

    const last = await w.threadService.list(alice, { limit: 2, cursor: second.next_cursor ?? "" });
    expect(last).toEqual({ threads: mine.slice(4), next_cursor: null });
  });

  it("has no next cursor when the page holds exactly the remaining threads", async () => {
    const { w, mine } = seed();
    expect(await w.threadService.list(alice, { limit: 5 })).toEqual({ threads: mine, next_cursor: null });
  });

  it("orders threads created in the same millisecond by id", async () => {
    const w = createWorld();
    const a = w.seedThread("alice", { created_at_ms: 1, id: "00000000-0000-7000-8000-00000000000a" });
    const b = w.seedThread("alice", { created_at_ms: 1, id: "00000000-0000-7000-8000-00000000000b" });
    const first = await w.threadService.list(alice, { limit: 1 });
    expect(first.threads).toEqual([b]);
    const second = await w.threadService.list(alice, { limit: 1, cursor: first.next_cursor ?? "" });
    expect(second).toEqual({ threads: [a], next_cursor: null });
  });

  it("refuses an invalid cursor with 400 before reading the store", async () => {
    const { w } = seed();
    await expectInvalidCursor(() => w.threadService.list(alice, { limit: 2, cursor: "bogus" }));
    expect(w.threads.callsTo("listByOwner")).toEqual([]);
  });

  it("answers 503 when the thread store is down", async () => {
    const { w } = seed();
    w.threads.down = true;
    expect(await caught(w.threadService.list(alice, { limit: 2 }))).toBeInstanceOf(ServiceUnavailableError);
  });
});

describe("ThreadService.get", () => {
  it("returns the thread with its message count", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.messages.put(makeMessage(thread, 1), makeMessage(thread, 2));
    expect(await w.threadService.get(alice, thread.id)).toEqual({ ...thread, message_count: 2 });
    expect(await w.threadService.get(service("agent"), thread.id)).toEqual({ ...thread, message_count: 2 });
  });

  it("answers thread_not_found for another user's thread", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const error = await caught(w.threadService.get(user("bob"), thread.id));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ code: "thread_not_found" });
    expect(w.messages.callsTo("count")).toEqual([]);
  });

  it("reads a thread the hot tier lacks from PostgreSQL, and installs it", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    expect(await w.threadService.get(alice, thread.id)).toEqual({ ...thread, message_count: 0 });
    expect(w.cache.callsTo("install")).toEqual([[thread, 0, false]]);
  });

  it("answers 503 when the count cannot be read", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.messages.down = true;
    expect(await caught(w.threadService.get(alice, thread.id))).toBeInstanceOf(ServiceUnavailableError);
  });
});

describe("ThreadService.update", () => {
  const setup = () => {
    const w = createWorld();
    const thread = w.cachedThread("alice", { title: "draft" });
    w.registry.connections.set("c1", { connectionId: "c1", principal: alice, connectedAt: 0 });
    return { w, thread };
  };

  it("renames a thread for its owner, makes the hot tier forget its copy, and tells the subscribers", async () => {
    const { w, thread } = setup();
    await w.subscriptionService.subscribe(
      { connectionId: "c1", principal: alice, connectedAt: 0 },
      thread.id,
      {},
    );
    const updated = await w.threadService.update(alice, thread.id, { title: "Trip", metadata: { k: 1 } });
    expect(updated).toEqual({ ...thread, title: "Trip", metadata: { k: 1 } });
    expect(await w.threads.get(thread.id)).toEqual(updated);
    expect(await w.cache.getThread(thread.id)).toBeNull();
    const frames = w.notifier.eventsFor("c1").filter((f) => f.type === "thread.updated");
    expect(frames).toEqual([{ type: "thread.updated", thread: { ...updated, archived: false } }]);
  });

  it("lets a service principal set the title and metadata but not archive; hides the thread from others", async () => {
    const { w, thread } = setup();
    expect(await w.threadService.update(service("agent"), thread.id, { title: "Named" })).toMatchObject({
      title: "Named",
    });
    expect(
      await caught(w.threadService.update(service("agent"), thread.id, { archived: true })),
    ).toMatchObject({
      code: "role_not_allowed",
    });
    expect(await caught(w.threadService.update(user("bob"), thread.id, { title: "x" }))).toBeInstanceOf(
      NotFoundError,
    );
  });

  it("archives (keeping the first time) and unarchives", async () => {
    const { w, thread } = setup();
    const at = w.clock.now();
    expect((await w.threadService.update(alice, thread.id, { archived: true })).archived_at_ms).toBe(at);
    w.clock.advance(1000);
    expect((await w.threadService.update(alice, thread.id, { archived: true })).archived_at_ms).toBe(at);
    expect(
      (await w.threadService.update(alice, thread.id, { archived: false })).archived_at_ms,
    ).toBeUndefined();
  });
});

describe("ThreadService.export", () => {
  it("writes every message in seq order across pages, as JSON or Markdown", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice", { title: "Long" });
    const ids: string[] = [];
    for (let i = 0; i < 130; i++) {
      w.clock.advance(1);
      ids.push(
        (await w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput(`m${i}`) }))
          .message.id,
      );
    }
    const json = await w.threadService.export(alice, thread.id, "json", 5_000_000);
    const parsed = JSON.parse(json.body) as {
      thread: { id: string; archived: boolean };
      messages: { id: string; state: string }[];
    };
    expect(parsed.thread).toMatchObject({ id: thread.id, archived: false });
    expect(parsed.messages.map((m) => m.id)).toEqual(ids);
    expect(parsed.messages[0]?.state).toBe("complete");
    expect(json.contentType).toBe("application/json; charset=utf-8");
    const md = await w.threadService.export(alice, thread.id, "markdown", 5_000_000);
    expect(md.body.startsWith("# Long\n")).toBe(true);
    expect(md.body.split("**user** · alice").length - 1).toBe(130);
  });

  it("refuses an export over its limit with 413 export_too_large, and another user's thread with 404", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    await w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput("x".repeat(2000)) });
    expect(await caught(w.threadService.export(alice, thread.id, "json", 1024))).toMatchObject({
      code: "export_too_large",
    });
    expect(await caught(w.threadService.export(user("bob"), thread.id, "json", 1024))).toBeInstanceOf(
      NotFoundError,
    );
  });
});
