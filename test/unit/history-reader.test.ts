import { describe, expect, it } from "vitest";
import { NotFoundError, ServiceUnavailableError } from "../../lambdas/core/errors.ts";
import type { HistoryQuery, Message, Thread } from "../../lambdas/core/model.ts";
import { SEQ_PER_MILLISECOND, settledByTime } from "../../lambdas/core/sequence.ts";
import {
  admin,
  createWorld,
  makeMessage,
  postInput,
  service,
  user,
  type WorldOptions,
} from "../support/fakes.ts";
import { caught } from "./caught.ts";

type World = ReturnType<typeof createWorld>;

const alice = user("alice");
const bob = user("bob");
const agent = service("agent");

const PERSIST_BOUND_MS = 60_000;
const newest = (limit: number): HistoryQuery => ({ direction: "backward", limit });

/** Messages of the thread in PostgreSQL only, seqs 1000, 1001, … */
const storedMessages = (w: World, thread: Thread, n: number): Message[] => {
  const list = Array.from({ length: n }, (_, i) => makeMessage(thread, 1000 + i));
  w.messages.put(...list);
  return list;
};

/** Messages accepted now, through the acceptor (so the hot tier has them at or above its floor). */
const accepted = async (w: World, thread: Thread, n: number): Promise<Message[]> => {
  const list: Message[] = [];
  for (let i = 0; i < n; i++) {
    const result = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput(`new ${i}`),
    });
    list.push(result.message);
    w.clock.advance(1);
  }
  return list;
};

/**
 * A thread whose history is in PostgreSQL, whose hot state was restored (installed from
 * PostgreSQL) now: the hot tier's floor lies above every stored message.
 */
const restored = async (n: number, options: WorldOptions = {}) => {
  const w = createWorld(options);
  const thread = w.seedThread("alice");
  const stored = storedMessages(w, thread, n);
  await w.access.install(thread.id);
  const floor = w.clock.now() * SEQ_PER_MILLISECOND;
  w.cache.calls.length = 0;
  w.threads.calls.length = 0;
  return { w, thread, stored, floor };
};

/** What a page read now from the hot tier is stamped with: the thread's stream position and the settled cursor. */
const readAt = (w: World, thread: Thread) => {
  const st = w.cache.states.get(thread.id);
  if (st === undefined) throw new Error("no hot state");
  return { epoch: st.epoch, pos: st.pos, settled: settledByTime(w.clock.now(), PERSIST_BOUND_MS) };
};

/** What a page read from PostgreSQL alone is stamped with: no position, the settled cursor. */
const unpositioned = (w: World, persistBoundMs = PERSIST_BOUND_MS) => ({
  epoch: null,
  pos: null,
  settled: settledByTime(w.clock.now(), persistBoundMs),
});

describe("HistoryReader.history: the hot tier's rows, completed from PostgreSQL below its floor", () => {
  it("reads PostgreSQL below the floor, warms the hot tier with the page, then serves it from the hot tier", async () => {
    const { w, thread, stored, floor } = await restored(3);

    const first = await w.reader.history(alice, thread.id, newest(10));

    expect(first).toEqual({
      source: "database",
      value: { messages: stored, next_cursor: null, ...readAt(w, thread) },
    });
    expect(w.messages.callsTo("history")).toEqual([
      [thread.id, { direction: "backward", before: floor, limit: 10 }, undefined],
    ]);
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, stored, true]]);

    const second = await w.reader.history(alice, thread.id, newest(10));
    expect(second).toEqual({
      source: "cache",
      value: { messages: stored, next_cursor: null, ...readAt(w, thread) },
    });
    expect(w.messages.callsTo("history")).toHaveLength(1);
  });

  it("warms the newest page as incomplete when older messages exist, and pages on right below the new floor", async () => {
    const { w, thread, stored } = await restored(5);

    const page = await w.reader.history(alice, thread.id, newest(2));
    expect(page.value).toMatchObject({ messages: stored.slice(3), next_cursor: 1003 });
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, stored.slice(3), false]]);

    const older = await w.reader.history(alice, thread.id, { direction: "backward", before: 1003, limit: 2 });
    expect(older.value).toMatchObject({ messages: stored.slice(1, 3), next_cursor: 1001 });
    expect(w.cache.callsTo("warm").at(-1)).toEqual([thread.id, stored.slice(1, 3), false]);

    const oldest = await w.reader.history(alice, thread.id, {
      direction: "backward",
      before: 1001,
      limit: 2,
    });
    expect(oldest.value).toMatchObject({ messages: stored.slice(0, 1), next_cursor: null });
    expect(w.cache.callsTo("warm").at(-1)).toEqual([thread.id, stored.slice(0, 1), true]);
    expect(w.cache.cachedSeqs(thread.id)).toEqual([1000, 1001, 1002, 1003, 1004]);
  });

  it("does not warm the hot tier from a page that does not reach its floor, nor from a forward page", async () => {
    const { w, thread } = await restored(5);
    await w.reader.history(alice, thread.id, { direction: "backward", before: 1003, limit: 2 });
    await w.reader.history(alice, thread.id, { direction: "forward", after: 1000, limit: 2 });
    expect(w.cache.callsTo("warm")).toEqual([]);
  });

  it("puts PostgreSQL's rows below the floor before the hot tier's rows above it", async () => {
    const { w, thread, stored, floor } = await restored(5);
    const fresh = await accepted(w, thread, 2);

    const page = await w.reader.history(alice, thread.id, newest(4));

    expect(page).toEqual({
      source: "database",
      value: { messages: [...stored.slice(3), ...fresh], next_cursor: 1003, ...readAt(w, thread) },
    });
    expect(w.messages.callsTo("history")).toEqual([
      [thread.id, { direction: "backward", before: floor, limit: 2 }, undefined],
    ]);
  });

  it("answers from the hot tier alone when its rows above the floor fill the page", async () => {
    const { w, thread } = await restored(5);
    const fresh = await accepted(w, thread, 2);

    const page = await w.reader.history(alice, thread.id, newest(2));

    // Maybe more below: the cursor is given without asking PostgreSQL.
    expect(page).toEqual({
      source: "cache",
      value: { messages: fresh, next_cursor: fresh[0]?.seq, ...readAt(w, thread) },
    });
    expect(w.messages.callsTo("history")).toEqual([]);
  });

  it("answers from the hot tier alone when it holds the whole thread", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    const list = await accepted(w, thread, 3);
    const at = readAt(w, thread);

    expect(await w.reader.history(alice, thread.id, newest(2))).toEqual({
      source: "cache",
      value: { messages: list.slice(1), next_cursor: list[1]?.seq, ...at },
    });
    expect(await w.reader.history(alice, thread.id, newest(10))).toEqual({
      source: "cache",
      value: { messages: list, next_cursor: null, ...at },
    });
    expect(
      await w.reader.history(alice, thread.id, { direction: "forward", after: list[0]?.seq ?? 0, limit: 1 }),
    ).toEqual({ source: "cache", value: { messages: list.slice(1, 2), next_cursor: list[1]?.seq, ...at } });
    expect(
      await w.reader.history(alice, thread.id, { direction: "forward", after: list[0]?.seq ?? 0, limit: 10 }),
    ).toEqual({ source: "cache", value: { messages: list.slice(1), next_cursor: null, ...at } });
    expect(w.messages.callsTo("history")).toEqual([]);
  });

  it("pages forward from below the floor through PostgreSQL up to the floor, then on through the hot tier", async () => {
    const { w, thread, stored, floor } = await restored(5);
    const fresh = await accepted(w, thread, 2);

    const all = await w.reader.history(alice, thread.id, { direction: "forward", after: 0, limit: 10 });
    expect(all).toEqual({
      source: "database",
      value: { messages: [...stored, ...fresh], next_cursor: null, ...readAt(w, thread) },
    });
    expect(w.messages.callsTo("history")).toEqual([
      [thread.id, { direction: "forward", after: 0, limit: 10 }, floor],
    ]);

    const crossing = await w.reader.history(alice, thread.id, {
      direction: "forward",
      after: 1001,
      limit: 4,
    });
    expect(crossing.value).toEqual({
      messages: [...stored.slice(2), fresh[0]],
      next_cursor: fresh[0]?.seq,
      ...readAt(w, thread),
    });

    const below = await w.reader.history(alice, thread.id, { direction: "forward", after: 0, limit: 2 });
    expect(below.value).toEqual({ messages: stored.slice(0, 2), next_cursor: 1001, ...readAt(w, thread) });
  });

  it("stamps a page with the stream position the hot tier read it at, so a reader can follow on from it", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    const [first] = await accepted(w, thread, 1);
    const page = await w.reader.history(alice, thread.id, newest(10));
    expect(page.value).toMatchObject({ messages: [first], pos: 1 });
    const [second] = await accepted(w, thread, 1);
    const following = await w.cache.follow(
      thread.id,
      "conn-1",
      { epoch: page.value.epoch ?? "", pos: 1 },
      10,
    );
    expect(following?.replay?.map((r) => r.message)).toEqual([second]);
  });

  it("serves a page the hot tier holds while PostgreSQL is down", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    const list = await accepted(w, thread, 2);
    w.messages.down = true;
    w.threads.down = true;
    expect((await w.reader.history(alice, thread.id, newest(10))).value.messages).toEqual(list);
  });

  it("reads PostgreSQL alone when the hot tier is down: no stream position, the settled cursor of the configured persist bound", async () => {
    const w = createWorld({ persistBoundMs: 30_000 });
    const thread = w.seedThread("alice");
    const stored = storedMessages(w, thread, 2);
    w.redisDown();

    const result = await w.reader.history(alice, thread.id, newest(10));

    expect(result).toEqual({
      source: "database",
      value: { messages: stored, next_cursor: null, ...unpositioned(w, 30_000) },
    });
    expect(w.messages.callsTo("history")).toEqual([[thread.id, newest(10), undefined]]);
    expect(w.diagnostics.messages()).toEqual(
      expect.arrayContaining(["cache unavailable for history", "could not warm cache"]),
    );
  });

  it("answers 503 when the hot tier and PostgreSQL are both down", async () => {
    const { w, thread } = await restored(2);
    w.redisDown();
    w.messages.down = true;
    const error = await caught(w.reader.history(alice, thread.id, newest(10)));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ code: "service_unavailable", message: "History unavailable" });
  });

  it("answers 503 when the page needs PostgreSQL below the floor and PostgreSQL is down", async () => {
    const { w, thread } = await restored(2);
    w.messages.down = true;
    expect(await caught(w.reader.history(alice, thread.id, newest(10)))).toBeInstanceOf(
      ServiceUnavailableError,
    );
  });

  it("lets a non-outage PostgreSQL error propagate unchanged", async () => {
    const { w, thread } = await restored(2);
    const bug = new Error("syntax error at or near");
    w.messages.fail("history", bug);
    expect(await caught(w.reader.history(alice, thread.id, newest(10)))).toBe(bug);
  });

  it("answers thread_not_found for another user's thread without reading any history", async () => {
    const { w, thread } = await restored(2);
    const error = await caught(w.reader.history(bob, thread.id, newest(5)));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ code: "thread_not_found" });
    expect(w.cache.callsTo("history")).toEqual([]);
    expect(w.messages.callsTo("history")).toEqual([]);
  });

  it("lets a service principal read any thread's history", async () => {
    const { w, thread, stored } = await restored(2);
    expect((await w.reader.history(agent, thread.id, newest(5))).value.messages).toEqual(stored);
  });
});

describe("HistoryReader.read (callers have authorised the thread)", () => {
  it("reads PostgreSQL alone for a thread without hot state, without a stream position", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const stored = storedMessages(w, thread, 3);

    const result = await w.reader.read(thread.id, { direction: "forward", after: 1000, limit: 10 });

    expect(result).toEqual({
      source: "database",
      value: { messages: stored.slice(1), next_cursor: null, ...unpositioned(w) },
    });
    expect(w.threads.calls).toEqual([]);
    expect(w.cache.callsTo("install")).toEqual([]);
    expect(w.cache.callsTo("warm")).toEqual([]);
  });

  it("offers the newest page to the hot tier (which keeps nothing without state)", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const stored = storedMessages(w, thread, 3);
    await w.reader.read(thread.id, newest(2));
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, stored.slice(1), false]]);
    expect(w.cache.states.has(thread.id)).toBe(false);
  });
});

describe("HistoryReader.message", () => {
  it("answers from the hot tier when it has the message", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    const [message] = await accepted(w, thread, 1);
    expect(await w.reader.message(alice, message?.id ?? "")).toEqual({ value: message, source: "cache" });
    expect(w.messages.callsTo("findById")).toEqual([]);
  });

  it("answers from PostgreSQL on a hot-tier miss and while the hot tier is down", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const [stored] = storedMessages(w, thread, 1);
    expect(await w.reader.message(alice, stored?.id ?? "")).toEqual({ value: stored, source: "database" });
    w.redisDown();
    expect(await w.reader.message(alice, stored?.id ?? "")).toEqual({ value: stored, source: "database" });
    expect(w.diagnostics.messages()).toContain("cache unavailable for message lookup");
  });

  it("answers message_not_found for a missing message and for another user's message, wherever it was found", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    const [cached] = await accepted(w, thread, 1);
    const [stored] = storedMessages(w, thread, 1);
    for (const [principal, id] of [
      [alice, "0196a0b0-0000-7000-8000-00000000000f"],
      [bob, cached?.id ?? ""],
      [bob, stored?.id ?? ""],
      [admin("root"), stored?.id ?? ""],
    ] as const) {
      const error = await caught(w.reader.message(principal, id));
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error).toMatchObject({ code: "message_not_found" });
    }
  });

  it("lets a service principal read any thread's message", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const [stored] = storedMessages(w, thread, 1);
    expect((await w.reader.message(agent, stored?.id ?? "")).value).toEqual(stored);
  });

  it("answers 503 on a hot-tier miss while PostgreSQL is down", async () => {
    const w = createWorld();
    w.messages.down = true;
    const error = await caught(w.reader.message(alice, "0196a0b0-0000-7000-8000-00000000000f"));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ message: "Message store unavailable" });
  });
});
