import { describe, expect, it } from "vitest";
import {
  ForbiddenError,
  NotFoundError,
  ServiceUnavailableError,
  TierUnavailableError,
} from "../../lambdas/core/errors.ts";
import { messageIdFor } from "../../lambdas/core/ids.ts";
import type { Message } from "../../lambdas/core/model.ts";
import { POSTGRES_SEQ_LANE, REDIS_SEQ_LANE, SEQ_PER_MILLISECOND } from "../../lambdas/core/sequence.ts";
import {
  admin,
  ConstraintError,
  createWorld,
  makeMessage,
  postInput,
  service,
  user,
} from "../support/fakes.ts";
import { caught } from "./caught.ts";

const alice = user("alice");
const bob = user("bob");
const agent = service("agent");

/** A world with one thread of alice's, already known to the cache. */
const setup = (options: Parameters<typeof createWorld>[0] = {}) => {
  const w = createWorld(options);
  const thread = w.seedThread("alice");
  w.cache.threads.set(thread.id, thread);
  return { w, thread };
};

const redisSeq = (nowMs: number): number => nowMs * SEQ_PER_MILLISECOND + REDIS_SEQ_LANE;
const postgresSeq = (nowMs: number): number => nowMs * SEQ_PER_MILLISECOND + POSTGRES_SEQ_LANE;

const expectThreadNotFound = (error: unknown): void => {
  expect(error).toBeInstanceOf(NotFoundError);
  expect(error).toMatchObject({ kind: "not_found", code: "thread_not_found", message: "Thread not found" });
};

describe("MessageService.accept (queued mode)", () => {
  it("reserves in the cache once, publishes the envelope and caches the message", async () => {
    const { w, thread } = setup();
    const now = w.clock.now();

    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("hello", { metadata: { k: 1 } }),
    });

    expect(w.cache.callsTo("reserve")).toEqual([[{ threadId: thread.id }]]);
    expect(result).toMatchObject({
      replayed: false,
      durability: "queued",
      degraded: false,
      cache: "written",
    });
    expect(result.message).toEqual({
      id: result.message.id,
      thread_id: thread.id,
      seq: redisSeq(now),
      role: "user",
      user_id: "alice",
      content: "hello",
      metadata: { k: 1 },
      client_message_id: null,
      created_at: Math.floor(now / 1000),
      created_at_ms: now,
    });
    expect(w.publisher.envelopes).toEqual([
      { v: 1, message: result.message, owner_id: "alice", accepted_at_ms: now },
    ]);
    expect(w.cache.byId.get(result.message.id)).toEqual({ message: result.message, ownerId: "alice" });
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("loads a thread the cache does not know from the repository and reserves again with install", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");

    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("hi"),
    });

    expect(w.cache.callsTo("reserve")).toEqual([
      [{ threadId: thread.id }],
      [{ threadId: thread.id, install: thread }],
    ]);
    expect(w.threads.callsTo("get")).toEqual([[thread.id]]);
    expect(w.cache.threads.get(thread.id)).toEqual(thread);
    expect(result.durability).toBe("queued");
    expect(w.publisher.envelopes).toHaveLength(1);
  });

  it("answers thread_not_found when the thread exists nowhere", async () => {
    const w = createWorld();
    const error = await caught(
      w.messageService.accept({
        principal: alice,
        threadId: "0196a0b0-0000-7000-8000-000000000000",
        input: postInput("hi"),
      }),
    );
    expectThreadNotFound(error);
    expect(w.publisher.envelopes).toEqual([]);
  });

  it("answers thread_not_found, exactly as for a missing thread, when a user posts to another user's thread", async () => {
    const { w, thread } = setup();
    const error = await caught(
      w.messageService.accept({ principal: bob, threadId: thread.id, input: postInput("intrusion") }),
    );
    expectThreadNotFound(error);
    expect(w.publisher.envelopes).toEqual([]);
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("does not let an admin (without the service role) post to another user's thread", async () => {
    const { w, thread } = setup();
    expectThreadNotFound(
      await caught(
        w.messageService.accept({ principal: admin("root"), threadId: thread.id, input: postInput("x") }),
      ),
    );
  });

  it("lets a service principal post to any thread, as an assistant message by default", async () => {
    const { w, thread } = setup();
    const result = await w.messageService.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("I can help"),
    });
    expect(result.message).toMatchObject({ role: "assistant", user_id: "agent" });
    expect(w.publisher.envelopes[0]?.owner_id).toBe("alice");
  });

  it("lets a service principal choose the role of its message", async () => {
    const { w, thread } = setup();
    const result = await w.messageService.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("be brief", { role: "system" }),
    });
    expect(result.message.role).toBe("system");
  });

  it.each(["assistant", "system"] as const)(
    "refuses a user posting a %s message with role_not_allowed (403) before touching any tier",
    async (role) => {
      const { w, thread } = setup();
      const error = await caught(
        w.messageService.accept({ principal: alice, threadId: thread.id, input: postInput("x", { role }) }),
      );
      expect(error).toBeInstanceOf(ForbiddenError);
      expect(error).toMatchObject({ kind: "forbidden", code: "role_not_allowed" });
      expect(w.cache.calls).toEqual([]);
      expect(w.publisher.calls).toEqual([]);
    },
  );

  it("accepts a user's message that asks for the user role explicitly", async () => {
    const { w, thread } = setup();
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x", { role: "user" }),
    });
    expect(result.message.role).toBe("user");
  });

  it("derives the message id from (thread, author, client_message_id)", async () => {
    const { w, thread } = setup();
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x", { clientMessageId: "c-1" }),
    });
    expect(result.message.id).toBe(messageIdFor(thread.id, "alice", "c-1"));
    expect(result.message.client_message_id).toBe("c-1");
  });

  it("replays the original message for a retry with the same client_message_id", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    const first = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("once", { clientMessageId: "c-1" }),
    });
    w.clock.advance(5);

    const retry = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("once", { clientMessageId: "c-1" }),
    });

    expect(retry).toMatchObject({ replayed: true, durability: "queued", degraded: false, cache: "skipped" });
    expect(retry.message).toEqual(first.message);
    expect(retry.delivery).toEqual({ sent: 0, gone: 0, failed: 0, skipped: 0 });
    expect(w.publisher.envelopes).toHaveLength(1);
    expect(w.notifier.framesFor("conn-bob")).toHaveLength(1);
  });

  it("keeps idempotency keys apart per author: the same client_message_id from two authors makes two messages", async () => {
    const { w, thread } = setup();
    const mine = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("from alice", { clientMessageId: "c-1" }),
    });
    const theirs = await w.messageService.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("from agent", { clientMessageId: "c-1" }),
    });
    expect(theirs.replayed).toBe(false);
    expect(theirs.message.id).not.toBe(mine.message.id);
    expect(w.publisher.envelopes).toHaveLength(2);
  });

  it("never replays another author's message, even when user ids and client ids contain ':'", async () => {
    // Client ids may contain ':' (validation allows it). The cache key is `${userId}:${clientId}`,
    // so (agent, "x:c1") and (agent:x, "c1") must still be different keys.
    const w = createWorld();
    const thread = w.seedThread("agent:x");
    const fromService = await w.messageService.accept({
      principal: service("agent"),
      threadId: thread.id,
      input: postInput("from the service", { clientMessageId: "x:c1" }),
    });
    const fromOwner = await w.messageService.accept({
      principal: user("agent:x"),
      threadId: thread.id,
      input: postInput("from the owner", { clientMessageId: "c1" }),
    });
    expect(fromOwner.replayed).toBe(false);
    expect(fromOwner.message).toMatchObject({ user_id: "agent:x", content: "from the owner" });
    expect(fromOwner.message.id).not.toBe(fromService.message.id);
  });

  it("allocates strictly increasing seqs within a thread, also within one millisecond", async () => {
    const { w, thread } = setup();
    const seqs: number[] = [];
    for (const advance of [0, 0, 3, 0]) {
      w.clock.advance(advance);
      const r = await w.messageService.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("m"),
      });
      seqs.push(r.message.seq);
    }
    const base = redisSeq(w.clock.now() - 3);
    expect(seqs).toEqual([base, base + 1, redisSeq(w.clock.now()), redisSeq(w.clock.now()) + 1]);
  });

  it("fans the message out to the thread's subscribers except the sender's own connection", async () => {
    const { w, thread } = setup();
    for (const id of ["conn-alice", "conn-tab2", "conn-agent"]) w.registry.addSubscription(id, thread.id);

    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("hello all"),
      originConnectionId: "conn-alice",
    });

    expect(result.delivery).toEqual({ sent: 2, gone: 0, failed: 0, skipped: 0 });
    // The subscriber list came with the reservation: no separate registry read.
    expect(w.registry.callsTo("subscribers")).toEqual([]);
    expect(w.notifier.framesFor("conn-alice")).toEqual([]);
    for (const id of ["conn-tab2", "conn-agent"]) {
      expect(w.notifier.eventsFor(id)).toEqual([{ type: "message.created", message: result.message }]);
    }
  });

  it("reports the time spent in each tier and in total", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(result.timings.map((t) => t.name).sort()).toEqual(["cache", "cache_write", "sqs", "total", "ws"]);
    expect(result.timings.at(-1)?.name).toBe("total");
    for (const t of result.timings) expect(t.ms).toBeGreaterThanOrEqual(0);
  });

  describe("when the persist queue (SQS) is down", () => {
    it("commits synchronously with the reserved seq and answers committed + degraded", async () => {
      const { w, thread } = setup();
      w.publisher.down = true;
      w.registry.addSubscription("conn-bob", thread.id);

      const result = await w.messageService.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("durable anyway"),
      });

      expect(result).toMatchObject({
        replayed: false,
        durability: "committed",
        degraded: true,
        cache: "written",
      });
      expect(result.message.seq).toBe(redisSeq(w.clock.now()));
      expect(w.messages.callsTo("commit")).toEqual([[result.message]]);
      expect(w.messages.rows.get(result.message.id)).toEqual(result.message);
      expect(w.messages.outbox).toEqual([result.message.id]);
      expect(w.notifier.framesFor("conn-bob")).toHaveLength(1);
      expect(result.timings.map((t) => t.name)).toContain("db");
      expect(w.diagnostics.messages()).toContain("persist queue unavailable; committing synchronously");
    });

    it("answers 503 service_unavailable with Retry-After when PostgreSQL is down too", async () => {
      const { w, thread } = setup({ retryAfterSeconds: 11 });
      w.publisher.down = true;
      w.messages.down = true;
      w.registry.addSubscription("conn-bob", thread.id);

      const error = await caught(
        w.messageService.accept({ principal: alice, threadId: thread.id, input: postInput("lost?") }),
      );

      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(error).toMatchObject({
        kind: "unavailable",
        code: "service_unavailable",
        retryAfterSeconds: 11,
      });
      expect((error as ServiceUnavailableError).cause).toBeInstanceOf(TierUnavailableError);
      expect(w.cache.callsTo("store")).toEqual([]);
      expect(w.notifier.calls).toEqual([]);
    });

    it("lets a non-outage commit error propagate unchanged instead of a 503", async () => {
      const { w, thread } = setup();
      w.publisher.down = true;
      const bug = new ConstraintError("check constraint violated");
      w.messages.fail("commit", bug);
      const error = await caught(
        w.messageService.accept({ principal: alice, threadId: thread.id, input: postInput("x") }),
      );
      expect(error).toBe(bug);
    });

    it("replays the stored message when the commit finds it was stored already", async () => {
      const { w, thread } = setup();
      w.publisher.down = true;
      const id = messageIdFor(thread.id, "alice", "c-9");
      const stored = makeMessage(thread, 42, { id, client_message_id: "c-9", content: "original" });
      w.messages.put(stored);

      const result = await w.messageService.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("original", { clientMessageId: "c-9" }),
      });

      expect(result).toMatchObject({ replayed: true, durability: "committed" });
      expect(result.message).toEqual(stored);
      expect(w.cache.callsTo("store")).toEqual([]);
    });
  });

  describe("when the cache (Redis) is down", () => {
    it("takes the seq from PostgreSQL (its lane), queues the message and skips the cache", async () => {
      const { w, thread } = setup();
      w.redisDown();

      const result = await w.messageService.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("x"),
      });

      expect(result).toMatchObject({
        replayed: false,
        durability: "queued",
        degraded: false,
        cache: "skipped",
      });
      expect(result.message.seq).toBe(postgresSeq(w.clock.now()));
      expect(w.threads.callsTo("allocateSeq")).toEqual([[thread.id]]);
      expect(w.cache.callsTo("store")).toEqual([]);
      expect(w.publisher.envelopes.map((e) => e.message)).toEqual([result.message]);
      expect(result.delivery).toEqual({ sent: 0, gone: 0, failed: 0, skipped: 0 });
      expect(w.diagnostics.messages()).toContain("cache unavailable on accept; using PostgreSQL for seq");
    });

    it("answers committed + degraded when SQS is down as well", async () => {
      const { w, thread } = setup();
      w.redisDown();
      w.publisher.down = true;
      const result = await w.messageService.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("x"),
      });
      expect(result).toMatchObject({ durability: "committed", degraded: true, cache: "skipped" });
      expect(w.messages.rows.get(result.message.id)?.seq).toBe(postgresSeq(w.clock.now()));
    });

    it("recognises a retry by its derived id in PostgreSQL and replays it", async () => {
      const { w, thread } = setup();
      const id = messageIdFor(thread.id, "alice", "c-7");
      const stored = makeMessage(thread, 77, { id, client_message_id: "c-7" });
      w.messages.put(stored);
      w.redisDown();

      const result = await w.messageService.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("again", { clientMessageId: "c-7" }),
      });

      expect(result).toMatchObject({ replayed: true, durability: "committed", cache: "skipped" });
      expect(result.message).toEqual(stored);
      expect(w.messages.callsTo("findById")).toEqual([[id]]);
      expect(w.threads.callsTo("allocateSeq")).toEqual([]);
      expect(w.publisher.envelopes).toEqual([]);
    });

    it("answers thread_not_found for a missing thread and for another user's thread", async () => {
      const { w, thread } = setup();
      w.redisDown();
      expectThreadNotFound(
        await caught(
          w.messageService.accept({
            principal: alice,
            threadId: "0196a0b0-0000-7000-8000-000000000001",
            input: postInput("x"),
          }),
        ),
      );
      expectThreadNotFound(
        await caught(w.messageService.accept({ principal: bob, threadId: thread.id, input: postInput("x") })),
      );
      expect(w.publisher.envelopes).toEqual([]);
    });

    it.each([
      ["without a client_message_id (seq allocation fails)", undefined],
      ["with a client_message_id (the replay lookup fails)", "c-1"],
    ])("answers 503 when PostgreSQL is down too, %s", async (_case, clientMessageId) => {
      const { w, thread } = setup();
      w.redisDown();
      w.messages.down = true;
      w.threads.down = true;
      const error = await caught(
        w.messageService.accept({
          principal: alice,
          threadId: thread.id,
          input: postInput("x", { clientMessageId }),
        }),
      );
      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(error).toMatchObject({ code: "service_unavailable", retryAfterSeconds: w.retryAfterSeconds });
      expect(w.publisher.envelopes).toEqual([]);
    });
  });

  it("treats any failure of the reservation that is not an AppError as a cache outage", async () => {
    const { w, thread } = setup();
    w.cache.fail("reserve", new Error("NOSCRIPT No matching script"));
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(result).toMatchObject({ durability: "queued", cache: "skipped" });
    expect(result.message.seq).toBe(postgresSeq(w.clock.now()));
  });

  it("still accepts when only the cache write fails, reporting cache: failed", async () => {
    const { w, thread } = setup();
    w.cache.fail("store");
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(result).toMatchObject({ durability: "queued", cache: "failed", replayed: false });
    expect(w.publisher.envelopes).toHaveLength(1);
    expect(w.diagnostics.messages()).toContain("could not cache accepted message");
  });

  it("answers 503 when the cache does not know the thread and the thread store is down", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.threads.down = true;
    const error = await caught(
      w.messageService.accept({ principal: alice, threadId: thread.id, input: postInput("x") }),
    );
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(w.publisher.envelopes).toEqual([]);
  });
});

describe("MessageService.accept (sync mode, the rollback switch)", () => {
  it("commits with seq null so PostgreSQL allocates it, and publishes nothing", async () => {
    const { w, thread } = setup({ mode: "sync" });
    const now = w.clock.now();

    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("legacy", { clientMessageId: "c-1" }),
    });

    const [commitArgs] = w.messages.callsTo("commit");
    expect(commitArgs?.[0]).toMatchObject({ seq: null, content: "legacy", thread_id: thread.id });
    expect(result).toMatchObject({
      replayed: false,
      durability: "committed",
      degraded: false,
      cache: "written",
    });
    expect(result.message.seq).toBe(postgresSeq(now));
    expect(result.message.id).toBe(messageIdFor(thread.id, "alice", "c-1"));
    expect(w.messages.outbox).toEqual([result.message.id]);
    expect(w.publisher.calls).toEqual([]);
    expect(w.cache.callsTo("reserve")).toEqual([]);
    expect(w.cache.byId.get(result.message.id)?.message).toEqual(result.message);
  });

  it("replays when the commit reports the message as already stored", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.registry.addSubscription("conn-bob", thread.id);
    const first = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("once", { clientMessageId: "c-1" }),
    });
    const retry = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("once", { clientMessageId: "c-1" }),
    });
    expect(retry).toMatchObject({ replayed: true, durability: "committed", cache: "skipped" });
    expect(retry.message).toEqual(first.message);
    expect(w.messages.threadMessages(thread.id)).toHaveLength(1);
    expect(w.notifier.framesFor("conn-bob")).toHaveLength(1);
  });

  it("fans out to subscribers except the sender's connection", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.registry.addSubscription("conn-alice", thread.id);
    w.registry.addSubscription("conn-bob", thread.id);
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
      originConnectionId: "conn-alice",
    });
    expect(result.delivery.sent).toBe(1);
    expect(w.notifier.framesFor("conn-alice")).toEqual([]);
    expect(w.notifier.eventsFor("conn-bob")).toEqual([{ type: "message.created", message: result.message }]);
  });

  it("answers thread_not_found for another user's thread without committing", async () => {
    const { w, thread } = setup({ mode: "sync" });
    expectThreadNotFound(
      await caught(w.messageService.accept({ principal: bob, threadId: thread.id, input: postInput("x") })),
    );
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("answers thread_not_found when the commit finds no thread", async () => {
    const w = createWorld({ mode: "sync" });
    const ghost = { ...w.seedThread("alice") };
    w.threads.rows.delete(ghost.id);
    w.cache.threads.set(ghost.id, ghost);
    expectThreadNotFound(
      await caught(w.messageService.accept({ principal: alice, threadId: ghost.id, input: postInput("x") })),
    );
  });

  it("answers 503 when PostgreSQL is down", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.messages.down = true;
    const error = await caught(
      w.messageService.accept({ principal: alice, threadId: thread.id, input: postInput("x") }),
    );
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ retryAfterSeconds: w.retryAfterSeconds });
  });

  it("still commits with Redis down: thread from PostgreSQL, no fan-out, cache: failed", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.redisDown();
    const result = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(result).toMatchObject({ durability: "committed", degraded: false, cache: "failed" });
    expect(result.delivery).toEqual({ sent: 0, gone: 0, failed: 0, skipped: 0 });
    expect(w.threads.callsTo("get")).toEqual([[thread.id]]);
    expect(w.diagnostics.messages()).toEqual(
      expect.arrayContaining(["connection registry unavailable", "could not cache accepted message"]),
    );
  });
});

describe("MessageService.history", () => {
  const seedMessages = (w: ReturnType<typeof createWorld>, threadId: string, n: number): Message[] => {
    const list = Array.from({ length: n }, (_, i) => makeMessage({ id: threadId }, 1000 + i));
    w.messages.put(...list);
    return list;
  };

  it("reads the repository when the cache cannot prove the page complete, then warms the cache", async () => {
    const { w, thread } = setup();
    const list = seedMessages(w, thread.id, 3);

    const first = await w.messageService.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(first).toEqual({ source: "database", value: { messages: list, next_cursor: null } });
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, list, true]]);

    const second = await w.messageService.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(second).toEqual({ source: "cache", value: { messages: list, next_cursor: null } });
    expect(w.messages.callsTo("history")).toHaveLength(1);
  });

  it("warms the newest page as incomplete when older pages exist", async () => {
    const { w, thread } = setup();
    const list = seedMessages(w, thread.id, 5);
    const page = await w.messageService.history(alice, thread.id, { direction: "backward", limit: 2 });
    expect(page.value).toEqual({ messages: list.slice(3), next_cursor: list[3]?.seq });
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, list.slice(3), false]]);
  });

  it("does not warm the cache from an older page or a forward page", async () => {
    const { w, thread } = setup();
    seedMessages(w, thread.id, 5);
    await w.messageService.history(alice, thread.id, { direction: "backward", before: 1003, limit: 2 });
    await w.messageService.history(alice, thread.id, { direction: "forward", after: 1000, limit: 2 });
    expect(w.cache.callsTo("warm")).toEqual([]);
  });

  it("answers from the cache without touching the repository when the cache holds the page", async () => {
    const { w, thread } = setup();
    const list = seedMessages(w, thread.id, 4);
    await w.cache.warm(thread.id, list, true);
    const result = await w.messageService.history(alice, thread.id, {
      direction: "forward",
      after: 1001,
      limit: 10,
    });
    expect(result).toEqual({ source: "cache", value: { messages: list.slice(2), next_cursor: null } });
    expect(w.messages.callsTo("history")).toEqual([]);
  });

  it("falls back to the repository when the cache is down", async () => {
    const { w, thread } = setup();
    const list = seedMessages(w, thread.id, 2);
    w.redisDown();
    const result = await w.messageService.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(result).toEqual({ source: "database", value: { messages: list, next_cursor: null } });
    expect(w.diagnostics.messages()).toContain("cache unavailable for history");
  });

  it("answers 503 when the cache and the repository are both down", async () => {
    const { w, thread } = setup();
    w.redisDown();
    w.messages.down = true;
    const error = await caught(
      w.messageService.history(alice, thread.id, { direction: "backward", limit: 10 }),
    );
    expect(error).toBeInstanceOf(ServiceUnavailableError);
  });

  it("lets a non-outage repository error propagate unchanged", async () => {
    const { w, thread } = setup();
    const bug = new Error("syntax error at or near");
    w.messages.fail("history", bug);
    expect(
      await caught(w.messageService.history(alice, thread.id, { direction: "backward", limit: 10 })),
    ).toBe(bug);
  });

  it("answers thread_not_found for another user's thread", async () => {
    const { w, thread } = setup();
    expectThreadNotFound(
      await caught(w.messageService.history(bob, thread.id, { direction: "backward", limit: 5 })),
    );
    expect(w.messages.callsTo("history")).toEqual([]);
  });
});

describe("MessageService.getMessage", () => {
  it("answers from the cache when the message is cached", async () => {
    const { w, thread } = setup();
    const { message } = await w.messageService.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(await w.messageService.getMessage(alice, message.id)).toEqual({ value: message, source: "cache" });
    expect(w.messages.callsTo("findById")).toEqual([]);
  });

  it("answers from the repository on a cache miss and when the cache is down", async () => {
    const { w, thread } = setup();
    const stored = makeMessage(thread, 5);
    w.messages.put(stored);
    expect(await w.messageService.getMessage(alice, stored.id)).toEqual({
      value: stored,
      source: "database",
    });
    w.redisDown();
    expect(await w.messageService.getMessage(alice, stored.id)).toEqual({
      value: stored,
      source: "database",
    });
  });

  it("answers message_not_found for a missing message and for another user's message", async () => {
    const { w, thread } = setup();
    const stored = makeMessage(thread, 5);
    w.messages.put(stored);
    for (const [principal, id] of [
      [alice, "0196a0b0-0000-7000-8000-00000000000f"],
      [bob, stored.id],
    ] as const) {
      const error = await caught(w.messageService.getMessage(principal, id));
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error).toMatchObject({ code: "message_not_found" });
    }
  });

  it("lets a service principal read any thread's message", async () => {
    const { w, thread } = setup();
    const stored = makeMessage(thread, 5);
    w.messages.put(stored);
    expect((await w.messageService.getMessage(agent, stored.id)).value).toEqual(stored);
  });

  it("answers 503 on a cache miss while the repository is down", async () => {
    const { w } = setup();
    w.messages.down = true;
    const error = await caught(w.messageService.getMessage(alice, "0196a0b0-0000-7000-8000-00000000000f"));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
  });
});

describe("MessageService.recoverCache", () => {
  it("requires the admin role", async () => {
    const { w, thread } = setup();
    for (const principal of [alice, agent]) {
      const error = await caught(w.messageService.recoverCache(principal, thread.id));
      expect(error).toBeInstanceOf(ForbiddenError);
      expect(error).toMatchObject({ code: "admin_required" });
    }
  });

  it("reloads the thread and its newest messages into the cache", async () => {
    const w = createWorld({ historyCacheSize: 3 });
    const thread = w.seedThread("alice");
    const list = Array.from({ length: 5 }, (_, i) => makeMessage(thread, 10 + i));
    w.messages.put(...list);

    expect(await w.messageService.recoverCache(admin("root"), thread.id)).toEqual({ backfilled: 3 });
    expect(w.cache.threads.get(thread.id)).toEqual(thread);
    expect(w.cache.cachedSeqs(thread.id)).toEqual([12, 13, 14]);
    const page = await w.messageService.history(alice, thread.id, { direction: "backward", limit: 2 });
    expect(page).toEqual({ source: "cache", value: { messages: list.slice(3), next_cursor: 13 } });
  });

  it("answers thread_not_found for an unknown thread", async () => {
    const w = createWorld();
    expectThreadNotFound(
      await caught(w.messageService.recoverCache(admin("root"), "0196a0b0-0000-7000-8000-00000000000f")),
    );
  });

  it("answers 503 when the cache or the database is down", async () => {
    const { w, thread } = setup();
    w.redisDown();
    expect(await caught(w.messageService.recoverCache(admin("root"), thread.id))).toBeInstanceOf(
      ServiceUnavailableError,
    );
    w.cache.heal();
    w.threads.down = true;
    expect(await caught(w.messageService.recoverCache(admin("root"), thread.id))).toBeInstanceOf(
      ServiceUnavailableError,
    );
  });
});
