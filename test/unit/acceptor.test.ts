import { describe, expect, it } from "vitest";
import { WriteFailedError } from "../../lambdas/core/durable-writers.ts";
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  ServiceUnavailableError,
  TierUnavailableError,
} from "../../lambdas/core/errors.ts";
import { fingerprintOf, idempotencyKey, messageIdFor } from "../../lambdas/core/ids.ts";
import {
  type Message,
  type Principal,
  type Thread,
  toEpochSeconds,
  toWire,
} from "../../lambdas/core/model.ts";
import type { ReleaseOutcome, ReserveInput } from "../../lambdas/core/ports.ts";
import {
  POSTGRES_SEQ_LANE,
  REDIS_SEQ_LANE,
  SEQ_PER_MILLISECOND,
  settledByTime,
} from "../../lambdas/core/sequence.ts";
import type { PostMessageInput } from "../../lambdas/core/validation.ts";
import {
  admin,
  ConstraintError,
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

/** A world with one thread of alice's, created through ThreadService (so the hot tier has it). */
const setup = (options: WorldOptions = {}) => {
  const w = createWorld(options);
  const thread = w.cachedThread("alice");
  return { w, thread };
};

const post = (
  w: World,
  threadId: string,
  content: string,
  options: Partial<PostMessageInput> & { principal?: Principal; originConnectionId?: string } = {},
) => {
  const { principal = alice, originConnectionId, ...input } = options;
  return w.acceptor.accept({
    principal,
    threadId,
    input: postInput(content, input),
    ...(originConnectionId !== undefined ? { originConnectionId } : {}),
  });
};

const redisSeq = (nowMs: number): number => nowMs * SEQ_PER_MILLISECOND + REDIS_SEQ_LANE;
const postgresSeq = (nowMs: number): number => nowMs * SEQ_PER_MILLISECOND + POSTGRES_SEQ_LANE;

const NO_DELIVERY = { sent: 0, gone: 0, failed: 0, skipped: 0 };
const SERVER_KEY = /^srv:[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const expectThreadNotFound = (error: unknown): void => {
  expect(error).toBeInstanceOf(NotFoundError);
  expect(error).toMatchObject({ kind: "not_found", code: "thread_not_found", message: "Thread not found" });
};

const expectConflict = (error: unknown, code: string): void => {
  expect(error).toBeInstanceOf(ConflictError);
  expect(error).toMatchObject({ kind: "conflict", code });
};

const reservations = (w: World): ReserveInput[] =>
  w.cache.callsTo("reserve").map(([input]) => input as ReserveInput);

/** How the acceptor released its reservations, in order. */
const releases = (w: World): ReleaseOutcome["kind"][] =>
  w.cache.callsTo("release").map(([input]) => (input as { outcome: ReleaseOutcome }).outcome.kind);

/**
 * Another try of the same key (another Lambda), driven through the hot tier directly: it reserves
 * now, and makes its message visible when told to.
 */
const otherTry = async (w: World, thread: Thread, clientMessageId: string, content: string) => {
  const fingerprint = fingerprintOf({ role: "user", content, metadata: {} });
  const key = idempotencyKey("alice", clientMessageId);
  const reservation = await w.cache.reserve({
    threadId: thread.id,
    idempotencyKey: key,
    clientSupplied: true,
    fingerprint,
    token: "the-other-try",
    ownerId: "alice",
    nowMs: w.clock.now(),
  });
  if (reservation.kind !== "reserved") throw new Error(`expected a reservation, got ${reservation.kind}`);
  const message: Message = {
    id: messageIdFor(thread.id, "alice", clientMessageId),
    thread_id: thread.id,
    seq: reservation.seq,
    role: "user",
    user_id: "alice",
    content,
    metadata: {},
    client_message_id: clientMessageId,
    created_at: toEpochSeconds(reservation.createdAtMs),
    created_at_ms: reservation.createdAtMs,
  };
  const finish = async (): Promise<void> => {
    const stored = await w.cache.store(message, {
      ownerId: "alice",
      idempotencyKey: key,
      fingerprint,
      token: "the-other-try",
      queued: true,
    });
    if (stored.kind !== "visible")
      throw new Error(`expected the other try to become visible, got ${stored.kind}`);
  };
  return { reservation, message, finish };
};

describe("Acceptor.accept (queued mode)", () => {
  it("reserves in the hot tier once, publishes the envelope and makes the message visible", async () => {
    const { w, thread } = setup();
    const now = w.clock.now();

    const result = await post(w, thread.id, "hello", { metadata: { k: 1 } });

    const key = result.message.client_message_id ?? "";
    const fingerprint = fingerprintOf({ role: "user", content: "hello", metadata: { k: 1 } });
    expect(reservations(w)).toEqual([
      {
        threadId: thread.id,
        idempotencyKey: `alice|${key}`,
        clientSupplied: false,
        fingerprint,
        token: expect.any(String),
        ownerId: "alice",
        nowMs: now,
      },
    ]);
    expect(result).toMatchObject({
      replayed: false,
      durability: "queued",
      degraded: false,
      cache: "written",
    });
    expect(result.message).toEqual({
      id: messageIdFor(thread.id, "alice", key),
      thread_id: thread.id,
      seq: redisSeq(now),
      role: "user",
      user_id: "alice",
      content: "hello",
      metadata: { k: 1 },
      client_message_id: key,
      created_at: Math.floor(now / 1000),
      created_at_ms: now,
    });
    expect(w.publisher.envelopes).toEqual([
      { v: 1, message: result.message, owner_id: "alice", accepted_at_ms: now },
    ]);
    const token = reservations(w)[0]?.token;
    expect(w.cache.callsTo("store")).toEqual([
      [
        result.message,
        { ownerId: "alice", idempotencyKey: `alice|${key}`, fingerprint, token, queued: true },
      ],
    ]);
    expect(w.cache.byId.get(result.message.id)).toEqual({ message: result.message, ownerId: "alice" });
    // Its place in the thread's stream, and what time alone has settled by then.
    expect(result.position).toEqual({
      epoch: expect.any(String),
      pos: 1,
      settled: settledByTime(now, 60_000),
    });
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);
    expect(w.messages.callsTo("commit")).toEqual([]);
    expect(w.cache.callsTo("release")).toEqual([]);
  });

  it("gives a message without a client_message_id a key of the server's own (srv:<uuidv7>), new for each message", async () => {
    const { w, thread } = setup();
    const first = await post(w, thread.id, "same words");
    const second = await post(w, thread.id, "same words");

    for (const { message } of [first, second]) {
      expect(message.client_message_id).toMatch(SERVER_KEY);
      expect(message.id).toBe(messageIdFor(thread.id, "alice", message.client_message_id ?? ""));
    }
    expect(first.message.client_message_id).not.toBe(second.message.client_message_id);
    expect(second.replayed).toBe(false);
    expect(w.publisher.envelopes).toHaveLength(2);
  });

  it("derives the message id from (thread, author, client_message_id) and keys the reservation by the client's id", async () => {
    const { w, thread } = setup();
    const result = await post(w, thread.id, "x", { clientMessageId: "c-1" });
    expect(result.message.id).toBe(messageIdFor(thread.id, "alice", "c-1"));
    expect(result.message.client_message_id).toBe("c-1");
    expect(reservations(w)).toEqual([
      expect.objectContaining({ idempotencyKey: idempotencyKey("alice", "c-1"), clientSupplied: true }),
    ]);
  });

  it("installs a thread the hot tier does not know from PostgreSQL and reserves again", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const now = w.clock.now();

    const result = await post(w, thread.id, "hi");

    expect(w.cache.calls.map((c) => c.method)).toEqual(["reserve", "install", "reserve", "store"]);
    expect(w.threads.callsTo("getForInstall")).toEqual([[thread.id]]);
    expect(w.cache.callsTo("install")).toEqual([[thread, 0, false]]);
    expect(result).toMatchObject({ durability: "queued", cache: "written", replayed: false });
    expect(result.message.seq).toBe(redisSeq(now));
    // A restored hot state starts a stream of its own.
    expect(result.position).toMatchObject({ pos: 1 });
    expect(w.publisher.envelopes).toHaveLength(1);
  });

  it("answers thread_not_found when the thread exists nowhere", async () => {
    const w = createWorld();
    expectThreadNotFound(await caught(post(w, "0196a0b0-0000-7000-8000-000000000000", "hi")));
    expect(w.cache.callsTo("reserve")).toHaveLength(1);
    expect(w.cache.callsTo("install")).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
  });

  it("answers thread_not_found, exactly as for a missing thread, when a user posts to another user's thread", async () => {
    const { w, thread } = setup();
    expectThreadNotFound(await caught(post(w, thread.id, "intrusion", { principal: bob })));
    expect(reservations(w)).toEqual([expect.objectContaining({ ownerId: "bob" })]);
    expect(w.publisher.calls).toEqual([]);
    expect(w.messages.calls).toEqual([]);
  });

  it("does not let an admin (without the service role) post to another user's thread", async () => {
    const { w, thread } = setup();
    expectThreadNotFound(await caught(post(w, thread.id, "x", { principal: admin("root") })));
    expect(w.publisher.calls).toEqual([]);
  });

  it("lets a service principal post to any thread, as an assistant message by default", async () => {
    const { w, thread } = setup();
    const result = await post(w, thread.id, "I can help", { principal: agent });
    expect(reservations(w)).toEqual([expect.objectContaining({ ownerId: null })]);
    expect(result.message).toMatchObject({ role: "assistant", user_id: "agent" });
    expect(w.publisher.envelopes[0]?.owner_id).toBe("alice");
    expect(w.cache.byId.get(result.message.id)?.ownerId).toBe("alice");
  });

  it("lets a service principal choose the role of its message", async () => {
    const { w, thread } = setup();
    const result = await post(w, thread.id, "be brief", { principal: agent, role: "system" });
    expect(result.message.role).toBe("system");
  });

  it("refuses a service principal posting in the user's name (role user) before touching any tier", async () => {
    const { w, thread } = setup();
    const error = await caught(post(w, thread.id, "x", { principal: agent, role: "user" }));
    expect(error).toMatchObject({ kind: "forbidden", code: "role_not_allowed" });
    expect(w.cache.calls).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
  });

  it.each(["assistant", "system"] as const)(
    "refuses a user posting a %s message with role_not_allowed (403) before touching any tier",
    async (role) => {
      const { w, thread } = setup();
      const error = await caught(post(w, thread.id, "x", { role }));
      expect(error).toBeInstanceOf(ForbiddenError);
      expect(error).toMatchObject({ kind: "forbidden", code: "role_not_allowed" });
      expect(w.cache.calls).toEqual([]);
      expect(w.rateLimiter.calls).toEqual([]);
      expect(w.publisher.calls).toEqual([]);
    },
  );

  it("accepts a user's message that asks for the user role explicitly", async () => {
    const { w, thread } = setup();
    expect((await post(w, thread.id, "x", { role: "user" })).message.role).toBe("user");
  });

  it("allocates strictly increasing seqs within a thread, also within one millisecond", async () => {
    const { w, thread } = setup();
    const seqs: number[] = [];
    for (const advance of [0, 0, 3, 0]) {
      w.clock.advance(advance);
      seqs.push((await post(w, thread.id, "m")).message.seq);
    }
    const base = redisSeq(w.clock.now() - 3);
    expect(seqs).toEqual([base, base + 1, redisSeq(w.clock.now()), redisSeq(w.clock.now()) + 1]);
  });

  it("numbers the messages it makes visible with consecutive positions of one epoch, each with the settled cursor of its moment", async () => {
    const { w, thread } = setup({ persistBoundMs: 30_000 });
    const first = await post(w, thread.id, "one");
    w.clock.advance(7);
    const second = await post(w, thread.id, "two");
    expect(first.position).toEqual({
      epoch: expect.any(String),
      pos: 1,
      settled: settledByTime(w.clock.now() - 7, 30_000),
    });
    expect(second.position).toEqual({
      epoch: first.position?.epoch,
      pos: 2,
      settled: settledByTime(w.clock.now(), 30_000),
    });
  });

  it("fans the message out to the thread's subscribers except the sender's own connection, with its position", async () => {
    const { w, thread } = setup();
    for (const id of ["conn-alice", "conn-tab2", "conn-agent"]) w.registry.addSubscription(id, thread.id);

    const result = await post(w, thread.id, "hello all", { originConnectionId: "conn-alice" });

    expect(result.delivery).toEqual({ sent: 2, gone: 0, failed: 0, skipped: 0 });
    // The subscribers came with the store: no separate registry read.
    expect(w.registry.calls).toEqual([]);
    expect(w.notifier.framesFor("conn-alice")).toEqual([]);
    expect(result.position).toEqual({ epoch: expect.any(String), pos: 1, settled: w.settled() });
    for (const id of ["conn-tab2", "conn-agent"]) {
      expect(w.notifier.eventsFor(id)).toEqual([
        { type: "message.created", ...result.position, message: toWire(result.message) },
      ]);
    }
  });

  it("does not call the notifier when the sender is the only subscriber", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-alice", thread.id);
    const result = await post(w, thread.id, "x", { originConnectionId: "conn-alice" });
    expect(result.delivery).toEqual(NO_DELIVERY);
    expect(result.cache).toBe("written");
    expect(w.notifier.calls).toEqual([]);
  });

  it("reports the time spent in each tier and in total", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    const result = await post(w, thread.id, "x");
    expect(result.timings.map((t) => t.name).sort()).toEqual(["cache", "cache_write", "sqs", "total", "ws"]);
    expect(result.timings.at(-1)?.name).toBe("total");
    for (const t of result.timings) expect(t.ms).toBeGreaterThanOrEqual(0);
  });
});

describe("Acceptor.accept: one message per idempotency key", () => {
  it("replays the original message for a retry with the same client_message_id, without publishing or fanning out", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    const first = await post(w, thread.id, "once", { clientMessageId: "c-1" });
    w.clock.advance(5);

    const retry = await post(w, thread.id, "once", { clientMessageId: "c-1" });

    expect(retry).toMatchObject({
      replayed: true,
      durability: "queued",
      degraded: false,
      cache: "skipped",
      position: null,
    });
    expect(retry.message).toEqual(first.message);
    expect(retry.delivery).toEqual(NO_DELIVERY);
    expect(w.publisher.envelopes).toHaveLength(1);
    expect(w.cache.callsTo("store")).toHaveLength(1);
    expect(w.notifier.framesFor("conn-bob")).toHaveLength(1);
  });

  it.each([
    ["other content", { content: "twice" }],
    ["other metadata", { content: "once", metadata: { edited: true } }],
  ])("refuses a retry of the key with %s as 409 idempotency_key_reused", async (_what, changed) => {
    const { w, thread } = setup();
    await post(w, thread.id, "once", { clientMessageId: "c-1" });
    const { content, ...rest } = changed;
    const error = await caught(post(w, thread.id, content, { clientMessageId: "c-1", ...rest }));
    expectConflict(error, "idempotency_key_reused");
    expect(w.publisher.envelopes).toHaveLength(1);
  });

  it("keeps keys apart per author: the same client_message_id from two authors makes two messages", async () => {
    const { w, thread } = setup();
    const mine = await post(w, thread.id, "from alice", { clientMessageId: "c-1" });
    const theirs = await post(w, thread.id, "from agent", { clientMessageId: "c-1", principal: agent });
    expect(theirs.replayed).toBe(false);
    expect(theirs.message.id).not.toBe(mine.message.id);
    expect(w.publisher.envelopes).toHaveLength(2);
  });

  it("never replays another author's message, even when user ids and client ids contain ':'", async () => {
    const w = createWorld();
    const thread = w.cachedThread("agent:x");
    const fromService = await post(w, thread.id, "from the service", {
      principal: service("agent"),
      clientMessageId: "x:c1",
    });
    const fromOwner = await post(w, thread.id, "from the owner", {
      principal: user("agent:x"),
      clientMessageId: "c1",
    });
    expect(fromOwner.replayed).toBe(false);
    expect(fromOwner.message).toMatchObject({ user_id: "agent:x", content: "from the owner" });
    expect(fromOwner.message.id).not.toBe(fromService.message.id);
  });

  it("repeats a reservation that timed out with the same token, and gets the one it made back", async () => {
    const { w, thread } = setup();
    w.cache.timeOutAfterNext("reserve");

    const result = await post(w, thread.id, "x", { clientMessageId: "c-1" });

    const [first, second] = reservations(w);
    expect(second).toEqual(first);
    expect(result).toMatchObject({ replayed: false, cache: "written" });
    expect(result.message.seq).toBe(redisSeq(w.clock.now()));
    // No second reservation was made, so none is left pending.
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);
  });

  describe("while another try of the key is in flight", () => {
    it("waits for it (pausing, not failing) and replays its message once it is visible", async () => {
      const { w, thread } = setup();
      w.registry.addSubscription("conn-bob", thread.id);
      const other = await otherTry(w, thread, "c-1", "hello");
      w.pauses.during = other.finish;

      const result = await post(w, thread.id, "hello", { clientMessageId: "c-1" });

      expect(w.pauses.log).toEqual([10]);
      expect(result).toMatchObject({ replayed: true, cache: "skipped", delivery: NO_DELIVERY });
      expect(result.message).toEqual(other.message);
      expect(w.publisher.calls).toEqual([]);
      expect(w.cache.callsTo("store")).toHaveLength(1);
    });

    it("takes the reservation over once the other try's lease ran out: same seq and creation time", async () => {
      const { w, thread } = setup({ leaseMs: 1000 });
      const other = await otherTry(w, thread, "c-1", "hello");
      const reservedAt = w.clock.now();

      const result = await post(w, thread.id, "hello", { clientMessageId: "c-1" });

      // 10 + 20 + … + 640 = 1270 ms: the lease (1000 ms) runs out during the last pause.
      expect(w.pauses.log).toEqual([10, 20, 40, 80, 160, 320, 640]);
      expect(w.clock.now()).toBe(reservedAt + 1270);
      expect(result).toMatchObject({ replayed: false, cache: "written" });
      expect(result.message).toEqual(other.message);
      expect(result.message.created_at_ms).toBe(reservedAt);
      expect(w.publisher.envelopes.map((e) => e.message)).toEqual([other.message]);
    });

    it("asks PostgreSQL before taking over: an earlier try that committed in PostgreSQL's lane is replayed", async () => {
      const { w, thread } = setup({ leaseMs: 1000 });
      const other = await otherTry(w, thread, "c-1", "hello");
      // The other try's repeated reservation met an open circuit: PostgreSQL allocated its seq.
      const committed = await w.messages.commit({ ...other.message, seq: null });
      if (committed === null) throw new Error("no thread");
      w.clock.advance(1000);

      const result = await post(w, thread.id, "hello", { clientMessageId: "c-1" });

      expect(w.messages.callsTo("findById")).toEqual([[committed.message.id]]);
      // It was never made visible: this try does that, with PostgreSQL's seq, and sends nothing.
      expect(result).toMatchObject({ replayed: true, durability: "committed", cache: "written" });
      expect(result.message).toEqual(committed.message);
      expect(w.publisher.calls).toEqual([]);
      expect(w.cache.pendingSeqs(thread.id)).toEqual([]);
      const page = await w.cache.history(thread.id, { direction: "backward", limit: 10 });
      expect(page?.rows).toEqual([committed.message]);
    });

    it("keeps the reservation for the next retry when a try that took it over gives up (its original may be on its way)", async () => {
      const { w, thread } = setup({ leaseMs: 1000 });
      const other = await otherTry(w, thread, "c-1", "hello");
      w.publisher.down = true;
      w.messages.down = true;

      const error = await caught(post(w, thread.id, "hello", { clientMessageId: "c-1" }));

      // The takeover could not ask PostgreSQL whether the earlier try committed: 503 with the key.
      expect(error).toMatchObject({ code: "service_unavailable", clientMessageId: "c-1" });
      expect(releases(w)).toEqual(["unknown"]);
      w.publisher.down = false;
      w.messages.down = false;
      const retry = await post(w, thread.id, "hello", { clientMessageId: "c-1" });
      expect(retry.message).toEqual(other.message);
    });

    it("answers 409 request_in_progress when the other try still holds the key after every pause", async () => {
      const { w, thread } = setup();
      await otherTry(w, thread, "c-1", "hello");
      const reservesBefore = w.cache.callsTo("reserve").length;

      const error = await caught(post(w, thread.id, "hello", { clientMessageId: "c-1" }));

      expectConflict(error, "request_in_progress");
      expect(w.pauses.log).toEqual([10, 20, 40, 80, 160, 320, 640]);
      expect(w.cache.callsTo("reserve").length - reservesBefore).toBe(8);
      expect(w.publisher.calls).toEqual([]);
      expect(w.cache.callsTo("release")).toEqual([]);
    });

    it("refuses a try with other content at once, without waiting", async () => {
      const { w, thread } = setup();
      await otherTry(w, thread, "c-1", "hello");
      expectConflict(
        await caught(post(w, thread.id, "bye", { clientMessageId: "c-1" })),
        "idempotency_key_reused",
      );
      expect(w.pauses.log).toEqual([]);
    });

    it("installs the thread again and accepts when the hot tier lost the thread's state during the wait", async () => {
      const { w, thread } = setup();
      await otherTry(w, thread, "c-1", "hello");
      w.pauses.during = async () => {
        w.pauses.during = undefined;
        w.cache.flush();
      };

      const result = await post(w, thread.id, "hello", { clientMessageId: "c-1" });

      expect(result).toMatchObject({ replayed: false });
      expect(result.message.id).toBe(messageIdFor(thread.id, "alice", "c-1"));
      expect(w.threads.callsTo("getForInstall")).toEqual([[thread.id]]);
      expect(w.publisher.envelopes).toHaveLength(1);
    });
  });

  describe("when the hot tier lost the thread's state within the idempotency window (verify)", () => {
    /** alice's c-1 is accepted and persisted, then Redis loses everything. */
    const persistedThenFlushed = async () => {
      const { w, thread } = setup();
      const original = await post(w, thread.id, "once", { clientMessageId: "c-1" });
      await w.persistService.process(w.publisher.records());
      w.cache.flush();
      w.clock.advance(1000);
      w.cache.calls.length = 0;
      return { w, thread, original: original.message };
    };

    it("finds the original in PostgreSQL by its derived id, replays it and remembers it in the hot tier", async () => {
      const { w, thread, original } = await persistedThenFlushed();

      const retry = await post(w, thread.id, "once", { clientMessageId: "c-1" });

      expect(reservations(w).map((r) => r.clientSupplied)).toEqual([true, true]);
      expect(w.messages.callsTo("findById")).toEqual([[original.id]]);
      expect(retry).toMatchObject({
        replayed: true,
        durability: "committed",
        cache: "skipped",
        position: null,
      });
      expect(retry.message).toEqual(original);
      expect(releases(w)).toEqual(["replayed"]);
      expect(w.publisher.envelopes).toHaveLength(1);

      // The next retry is answered by the hot tier alone.
      const again = await post(w, thread.id, "once", { clientMessageId: "c-1" });
      expect(again).toMatchObject({ replayed: true, message: original });
      // The original is not in the hot tier's index (it is old): the replay reads it by id.
      expect(w.messages.callsTo("findById")).toHaveLength(2);
    });

    it("refuses a retry with other content as 409 and abandons the reservation", async () => {
      const { w, thread, original } = await persistedThenFlushed();

      expectConflict(
        await caught(post(w, thread.id, "twice", { clientMessageId: "c-1" })),
        "idempotency_key_reused",
      );

      expect(releases(w)).toEqual(["abandoned"]);
      expect(w.publisher.envelopes).toHaveLength(1);
      // The key is free again in the hot tier: the original's content still replays.
      expect((await post(w, thread.id, "once", { clientMessageId: "c-1" })).message).toEqual(original);
    });

    it("accepts a key PostgreSQL has never seen as a new message", async () => {
      const { w, thread } = await persistedThenFlushed();
      const result = await post(w, thread.id, "new", { clientMessageId: "c-2" });
      expect(w.messages.callsTo("findById")).toEqual([[messageIdFor(thread.id, "alice", "c-2")]]);
      expect(result).toMatchObject({ replayed: false, durability: "queued", cache: "written" });
      expect(w.publisher.envelopes).toHaveLength(2);
    });

    it("accepts as new, with a warning, when PostgreSQL cannot be asked", async () => {
      const { w, thread } = await persistedThenFlushed();
      w.messages.fail("findById");
      const result = await post(w, thread.id, "new", { clientMessageId: "c-2" });
      expect(result).toMatchObject({ replayed: false, cache: "written" });
      expect(w.diagnostics.messages()).toContain("could not check PostgreSQL for an earlier try");
    });

    it("does not ask PostgreSQL about a key the server made (nobody can have used it before)", async () => {
      const { w, thread } = await persistedThenFlushed();
      const result = await post(w, thread.id, "new");
      expect(reservations(w).at(-1)?.clientSupplied).toBe(false);
      expect(w.messages.callsTo("findById")).toEqual([]);
      expect(result.replayed).toBe(false);
    });
  });
});

describe("Acceptor.accept: when the message cannot be made durable", () => {
  it("commits synchronously with the reserved seq when the persist queue (SQS) is down: committed + degraded", async () => {
    const { w, thread } = setup();
    w.publisher.down = true;
    w.registry.addSubscription("conn-bob", thread.id);

    const result = await post(w, thread.id, "durable anyway");

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
    expect(w.cache.callsTo("store")).toEqual([[result.message, expect.objectContaining({ queued: false })]]);
    expect(w.notifier.framesFor("conn-bob")).toHaveLength(1);
    expect(result.timings.map((t) => t.name)).toContain("db");
    expect(w.diagnostics.messages()).toContain("persist queue unavailable; committing synchronously");
  });

  it("answers 503 with the key to retry with when SQS and PostgreSQL both fail, and keeps the reservation for that retry", async () => {
    const { w, thread } = setup();
    // The send timed out (it may have been stored), and PostgreSQL is down.
    w.publisher.fail("publish", w.publisher.timedOut());
    w.messages.down = true;
    w.registry.addSubscription("conn-bob", thread.id);

    const error = await caught(post(w, thread.id, "lost?", { clientMessageId: "c-1" }));

    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ kind: "unavailable", code: "service_unavailable", clientMessageId: "c-1" });
    expect((error as Error).message).toContain("retry with client_message_id c-1");
    const cause = (error as ServiceUnavailableError).cause;
    expect(cause).toBeInstanceOf(WriteFailedError);
    expect(cause).toMatchObject({ maybeStored: true });
    // A timed-out send may have been stored: the outcome is unknown, not abandoned.
    expect(releases(w)).toEqual(["unknown"]);
    expect(w.cache.callsTo("store")).toEqual([]);
    expect(w.notifier.calls).toEqual([]);
  });

  it("does not fall back to PostgreSQL when the send failed because this process is overloaded: 503 with the key, no commit", async () => {
    const { w, thread } = setup();
    // A timeout while the event loop lagged: the CPU, not SQS (runtime/admission.ts).
    w.publisher.fail("publish", new TierUnavailableError("sqs", "timed out", { overloaded: true }));

    const error = await caught(post(w, thread.id, "busy", { clientMessageId: "c-1" }));

    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ code: "service_unavailable", clientMessageId: "c-1" });
    expect((error as ServiceUnavailableError).cause).toMatchObject({ maybeStored: true });
    expect(w.messages.callsTo("commit")).toEqual([]);
    expect(releases(w)).toEqual(["unknown"]);

    // The retry with the same key, once the process has caught up, is accepted once.
    w.publisher.heal();
    w.clock.advance(6000);
    const retry = await post(w, thread.id, "busy", { clientMessageId: "c-1" });
    expect(retry).toMatchObject({ durability: "queued", degraded: false });
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("hands out the server-made key in the 503 when the client sent none; a retry with it takes the reservation over", async () => {
    const { w, thread } = setup();
    const acceptedAt = w.clock.now();
    w.publisher.fail("publish", w.publisher.timedOut());
    w.messages.down = true;
    const error = (await caught(post(w, thread.id, "important"))) as ServiceUnavailableError;
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error.clientMessageId).toMatch(SERVER_KEY);

    w.publisher.heal();
    w.messages.heal();
    w.clock.advance(2000);
    const retry = await post(w, thread.id, "important", { clientMessageId: error.clientMessageId ?? "" });

    expect(retry).toMatchObject({ replayed: false, durability: "queued", cache: "written" });
    expect(retry.message).toMatchObject({
      id: messageIdFor(thread.id, "alice", error.clientMessageId ?? ""),
      seq: redisSeq(acceptedAt),
      created_at_ms: acceptedAt,
      client_message_id: error.clientMessageId,
    });
    expect(w.publisher.envelopes).toHaveLength(1);
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);
  });

  it("abandons the reservation when neither tier was reached (circuits open): the key and the seq are free again", async () => {
    const { w, thread } = setup();
    w.publisher.fail("publish", new TierUnavailableError("sqs", "circuit open", { maybeApplied: false }));
    w.messages.fail("commit", new TierUnavailableError("postgres", "circuit open", { maybeApplied: false }));

    const error = await caught(post(w, thread.id, "x", { clientMessageId: "c-1" }));

    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({
      clientMessageId: "c-1",
      cause: expect.objectContaining({ maybeStored: false }),
    });
    expect(releases(w)).toEqual(["abandoned"]);
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);

    w.publisher.heal();
    w.messages.heal();
    w.clock.advance(1);
    const next = await post(w, thread.id, "x", { clientMessageId: "c-1" });
    expect(next).toMatchObject({ replayed: false, cache: "written" });
    expect(next.message.seq).toBe(redisSeq(w.clock.now()));
  });

  it("lets a non-outage commit error propagate unchanged and abandons the reservation", async () => {
    const { w, thread } = setup();
    w.publisher.down = true;
    const bug = new ConstraintError("check constraint violated");
    w.messages.fail("commit", bug);
    expect(await caught(post(w, thread.id, "x"))).toBe(bug);
    expect(releases(w)).toEqual(["abandoned"]);
    expect(w.cache.callsTo("store")).toEqual([]);
  });

  it("makes visible the copy PostgreSQL kept when an earlier try's commit timed out after storing it", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.publisher.down = true;
    w.messages.timeOutAfterNext("commit");
    const error = await caught(post(w, thread.id, "once", { clientMessageId: "c-1" }));
    expect(error).toMatchObject({ code: "service_unavailable", clientMessageId: "c-1" });
    const stored = w.messages.rows.get(messageIdFor(thread.id, "alice", "c-1"));

    const retry = await post(w, thread.id, "once", { clientMessageId: "c-1" });

    // The retry takes the reservation over, finds the stored copy and only makes it visible.
    expect(retry.message).toEqual(stored);
    expect(retry).toMatchObject({ replayed: true, durability: "committed", cache: "written" });
    expect(w.messages.callsTo("commit")).toHaveLength(1);
    expect(w.messages.threadMessages(thread.id)).toEqual([stored]);
    expect(w.notifier.eventsFor("conn-bob").map((e) => e.message)).toEqual([toWire(stored as Message)]);
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);
  });

  it("answers with PostgreSQL's copy, and shows it with PostgreSQL's seq, when PostgreSQL holds the key's message under another seq", async () => {
    // c-1 was accepted while the hot tier was unreachable (PostgreSQL allocated its seq) and the
    // client never saw the answer; it retries once the hot tier is back, while SQS is down.
    const { w, thread } = setup();
    w.redisDown();
    const first = await post(w, thread.id, "once", { clientMessageId: "c-1" });
    expect(w.messages.rows.get(first.message.id)).toEqual(first.message);
    w.cache.heal();
    w.registry.heal();
    w.rateLimiter.heal();
    w.publisher.down = true;
    w.clock.advance(10);

    const retry = await post(w, thread.id, "once", { clientMessageId: "c-1" });

    expect(retry.message).toEqual(first.message);
    expect(retry).toMatchObject({ durability: "committed", cache: "written" });
    expect(w.messages.threadMessages(thread.id)).toEqual([first.message]);
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page.value.messages).toEqual([first.message]);
    // The seq the retry reserved went unused: it holds nothing back.
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);
  });
});

describe("Acceptor.accept: making the message visible", () => {
  it("answers as a replay when another try of the key made its message visible first", async () => {
    const { w, thread } = setup({ leaseMs: 1000 });
    w.registry.addSubscription("conn-bob", thread.id);
    const other = await otherTry(w, thread, "c-1", "hello");
    w.clock.advance(1001);
    // This try takes the key over; the other one, slow but alive, finishes while this one publishes.
    w.publisher.onPublish = other.finish;

    const result = await post(w, thread.id, "hello", { clientMessageId: "c-1" });

    expect(w.pauses.log).toEqual([]);
    expect(result).toMatchObject({ replayed: true, durability: "queued", cache: "skipped", position: null });
    expect(result.message).toEqual(other.message);
    expect(result.delivery).toEqual(NO_DELIVERY);
    expect(w.notifier.calls).toEqual([]);
  });

  it("commits the message before answering when the hot tier lost the thread's state since the reservation (reads now look in PostgreSQL)", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.publisher.onPublish = async () => w.cache.flush();

    const result = await post(w, thread.id, "x");

    expect(result).toMatchObject({
      replayed: false,
      durability: "committed",
      cache: "failed",
      position: null,
    });
    expect(result.delivery).toEqual(NO_DELIVERY);
    expect(w.publisher.envelopes).toHaveLength(1);
    expect(w.notifier.calls).toEqual([]);
    expect(w.messages.rows.get(result.message.id)).toEqual(result.message);
    // Read-your-writes: the state is made anew, with a floor above the message; the page has it.
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page.value.messages).toEqual([result.message]);
  });

  it("commits the message before answering when the thread's state was made anew above its seq since the reservation", async () => {
    const { w, thread } = setup();
    w.publisher.onPublish = async () => {
      w.cache.flush();
      w.clock.advance(5);
      await w.access.install(thread.id);
    };

    const result = await post(w, thread.id, "x", { clientMessageId: "c-1" });

    expect(result).toMatchObject({ durability: "committed", cache: "failed" });
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page.value.messages).toEqual([result.message]);
    // A retry takes the reservation over at once and finds the message in PostgreSQL.
    const retry = await post(w, thread.id, "x", { clientMessageId: "c-1" });
    expect(retry).toMatchObject({ replayed: true, message: result.message });
  });

  it("leaves a message it committed because its hot state was lost for the consumer to make visible", async () => {
    const { w, thread } = setup();
    w.publisher.onPublish = async () => {
      w.cache.flush();
      w.clock.advance(5);
      await w.access.install(thread.id);
    };
    const result = await post(w, thread.id, "x", { clientMessageId: "c-1" });
    w.publisher.onPublish = undefined;
    // A read warms the range below the floor from PostgreSQL meanwhile, as if before the commit.
    w.cache.states.get(thread.id)?.index.clear();

    await w.persistService.process(w.publisher.records());

    expect(w.cache.cachedSeqs(thread.id)).toContain(result.message.seq);
  });

  it("still accepts when the store fails, repeating a call that may have been applied once, and answers cache: failed", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.cache.fail("store", w.cache.timedOut());

    const result = await post(w, thread.id, "x");

    expect(result).toMatchObject({ durability: "queued", cache: "failed", replayed: false, position: null });
    expect(w.cache.callsTo("store")).toHaveLength(2);
    expect(w.publisher.envelopes).toHaveLength(1);
    expect(w.notifier.calls).toEqual([]);
    expect(w.diagnostics.messages()).toContain("could not cache accepted message");
  });

  it.each([
    [
      "refused before it was sent (circuit open)",
      new TierUnavailableError("redis", "circuit open", { maybeApplied: false }),
    ],
    ["failed for another reason than an outage", new Error("NOSCRIPT No matching script")],
  ])("does not repeat a store that %s", async (_what, failure) => {
    const { w, thread } = setup();
    w.cache.fail("store", failure);
    const result = await post(w, thread.id, "x");
    expect(result.cache).toBe("failed");
    expect(w.cache.callsTo("store")).toHaveLength(1);
  });

  it("makes the message visible when the repeated store succeeds", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.cache.failNext("store", w.cache.timedOut());

    const result = await post(w, thread.id, "x");

    expect(result).toMatchObject({ cache: "written", replayed: false, delivery: { sent: 1 } });
    expect(result.position).toMatchObject({ pos: 1 });
    expect(w.cache.callsTo("store")).toHaveLength(2);
  });

  it("answers its own message as new, and fans it out, when a store that timed out had been applied", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.cache.timeOutAfterNext("store");

    const result = await post(w, thread.id, "x", { clientMessageId: "c-1" });

    expect(w.cache.callsTo("store")).toHaveLength(2);
    expect(result).toMatchObject({ replayed: false, cache: "written", position: { pos: 1 } });
    expect(w.notifier.eventsFor("conn-bob")).toEqual([
      { type: "message.created", ...result.position, message: toWire(result.message) },
    ]);
    // One position, not two.
    expect((await w.cache.follow(thread.id, "conn-later", null, 10))?.position.pos).toBe(1);
  });
});

describe("Acceptor.accept: when the hot tier is unreachable", () => {
  it("commits in the request with a seq PostgreSQL allocates (its lane), skipping the hot tier: committed + degraded, no fan-out", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.redisDown();

    const result = await post(w, thread.id, "x");

    expect(result).toMatchObject({
      replayed: false,
      durability: "committed",
      degraded: true,
      cache: "skipped",
      position: null,
      delivery: NO_DELIVERY,
    });
    expect(result.message.seq).toBe(postgresSeq(w.clock.now()));
    expect(result.message.client_message_id).toMatch(SERVER_KEY);
    // Redis is down (its circuit open): the reservation is not repeated.
    expect(w.cache.callsTo("reserve")).toHaveLength(1);
    expect(w.threads.callsTo("getForInstall")).toEqual([[thread.id]]);
    expect(w.messages.callsTo("commit")).toEqual([
      [expect.objectContaining({ id: result.message.id, seq: null })],
    ]);
    expect(w.messages.rows.get(result.message.id)).toEqual(result.message);
    // Not on the persist queue: the outbox relay forwards it and makes it visible later.
    expect(w.publisher.calls).toEqual([]);
    expect(w.messages.outbox).toEqual([result.message.id]);
    // One try to make it visible, not repeated.
    expect(w.cache.callsTo("store")).toHaveLength(1);
    expect(w.notifier.calls).toEqual([]);
    expect(result.timings.map((t) => t.name)).toContain("db");
    expect(w.diagnostics.messages()).toContain("cache unavailable on accept; PostgreSQL allocates the seq");
  });

  it("makes the message visible, and fans it out, when only the reservation failed", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.cache.fail("reserve", new TierUnavailableError("redis", "circuit open", { maybeApplied: false }));

    const result = await post(w, thread.id, "x");

    // Refused before it was sent: not repeated.
    expect(w.cache.callsTo("reserve")).toHaveLength(1);
    expect(result).toMatchObject({ durability: "committed", cache: "written", delivery: { sent: 1 } });
    expect(result.message.seq).toBe(postgresSeq(w.clock.now()));
    expect(w.cache.cachedSeqs(thread.id)).toEqual([result.message.seq]);
    expect(w.notifier.eventsFor("conn-bob")).toEqual([
      {
        type: "message.created",
        epoch: expect.any(String),
        pos: 1,
        settled: w.settled(),
        message: toWire(result.message),
      },
    ]);
  });

  it("gives the sender the position its subscribers got when the message became visible without a reservation", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-bob", thread.id);
    w.cache.fail("reserve", new TierUnavailableError("redis", "circuit open", { maybeApplied: false }));

    const result = await post(w, thread.id, "x");

    const [frame] = w.notifier.eventsFor("conn-bob");
    expect(result.cache).toBe("written");
    expect(result.position).toEqual({ epoch: frame?.epoch, pos: frame?.pos, settled: frame?.settled });
  });

  it("answers 503 with the key to retry with when Redis is slow (a timeout, its circuit closed), after repeating the reservation once", async () => {
    const { w, thread } = setup();
    w.cache.fail("reserve", w.cache.timedOut());
    const error = await caught(post(w, thread.id, "x", { clientMessageId: "c-slow" }));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ clientMessageId: "c-slow" });
    expect(w.cache.callsTo("reserve")).toHaveLength(2);
    // Not pushed into the PostgreSQL lane: an overloaded Redis must not overload PostgreSQL too.
    expect(w.messages.calls).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
  });

  it("answers 503 with the key, not PostgreSQL's lane, when a reservation timed out and its repeat could not reach Redis (the first may hold a reservation)", async () => {
    const { w, thread } = setup();
    const reserve = w.cache.reserve.bind(w.cache);
    let calls = 0;
    w.cache.reserve = async (input) => {
      calls += 1;
      if (calls === 2) throw w.cache.outage();
      const reservation = await reserve(input);
      if (calls === 1) throw w.cache.timedOut();
      return reservation;
    };

    const error = await caught(post(w, thread.id, "x", { clientMessageId: "c-1" }));

    expect(error).toMatchObject({ code: "service_unavailable", clientMessageId: "c-1" });
    expect(w.messages.callsTo("commit")).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
  });

  it("is told again, when it repeats a reservation that timed out, that it took the key over", async () => {
    const { w, thread } = setup({ leaseMs: 1000 });
    await otherTry(w, thread, "c-1", "hello");
    w.clock.advance(1001);
    w.cache.timeOutAfterNext("reserve");

    await post(w, thread.id, "hello", { clientMessageId: "c-1" });

    const [, first, repeat] = reservations(w);
    expect(repeat?.token).toBe(first?.token);
    // The takeover's check of PostgreSQL ran although the answer that said "takeover" was lost.
    expect(w.messages.callsTo("findById")).toHaveLength(1);
  });

  it("uses the hot tier when the repeated reservation succeeds", async () => {
    const { w, thread } = setup();
    w.cache.failNext("reserve", w.cache.timedOut());
    const result = await post(w, thread.id, "x");
    expect(w.cache.callsTo("reserve")).toHaveLength(2);
    expect(result).toMatchObject({ cache: "written", durability: "queued" });
    expect(result.message.seq).toBe(redisSeq(w.clock.now()));
  });

  it("lets a reservation failure that is not an outage propagate (a bug is not a reason to fail over)", async () => {
    const { w, thread } = setup();
    const bug = new Error("NOSCRIPT No matching script");
    w.cache.fail("reserve", bug);
    expect(await caught(post(w, thread.id, "x"))).toBe(bug);
    expect(w.cache.callsTo("reserve")).toHaveLength(1);
    expect(w.messages.calls).toEqual([]);
    expect(w.publisher.calls).toEqual([]);
  });

  it("goes on without the hot tier when it cannot install the thread", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.cache.fail("install");
    const result = await post(w, thread.id, "x");
    expect(result).toMatchObject({ cache: "skipped", durability: "committed" });
    expect(result.message.seq).toBe(postgresSeq(w.clock.now()));
    expect(w.diagnostics.messages()).toContain("could not install thread in cache");
  });

  it("recognises a retry by its derived id in PostgreSQL and replays it", async () => {
    const { w, thread } = setup();
    const id = messageIdFor(thread.id, "alice", "c-7");
    const stored = makeMessage(thread, 77, { id, client_message_id: "c-7", content: "again" });
    w.messages.put(stored);
    w.redisDown();

    const result = await post(w, thread.id, "again", { clientMessageId: "c-7" });

    expect(result).toMatchObject({ replayed: true, durability: "committed", cache: "skipped" });
    expect(result.message).toEqual(stored);
    expect(w.messages.callsTo("findById")).toEqual([[id]]);
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("replays a retry whose original PostgreSQL returns with its metadata keys in jsonb order", async () => {
    const { w, thread } = setup();
    const id = messageIdFor(thread.id, "alice", "c-7");
    // jsonb stores object keys shorter first, then bytewise: {"zeta":1,"a":2} reads back as {"a":2,"zeta":1}.
    const stored = makeMessage(thread, 77, {
      id,
      client_message_id: "c-7",
      content: "again",
      metadata: { a: 2, zeta: 1 },
    });
    w.messages.put(stored);
    w.redisDown();

    const result = await post(w, thread.id, "again", { clientMessageId: "c-7", metadata: { zeta: 1, a: 2 } });

    expect(result).toMatchObject({ replayed: true, message: stored });
  });

  it("refuses a retry with other content for a key PostgreSQL has as 409", async () => {
    const { w, thread } = setup();
    const id = messageIdFor(thread.id, "alice", "c-7");
    w.messages.put(makeMessage(thread, 77, { id, client_message_id: "c-7", content: "original" }));
    w.redisDown();
    expectConflict(
      await caught(post(w, thread.id, "edited", { clientMessageId: "c-7" })),
      "idempotency_key_reused",
    );
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("does not look up a key the server made", async () => {
    const { w, thread } = setup();
    w.redisDown();
    await post(w, thread.id, "x");
    expect(w.messages.callsTo("findById")).toEqual([]);
  });

  it("answers thread_not_found for a missing thread and for another user's thread", async () => {
    const { w, thread } = setup();
    w.redisDown();
    expectThreadNotFound(await caught(post(w, "0196a0b0-0000-7000-8000-000000000001", "x")));
    expectThreadNotFound(await caught(post(w, thread.id, "x", { principal: bob })));
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("lets a service principal post to any thread", async () => {
    const { w, thread } = setup();
    w.redisDown();
    const result = await post(w, thread.id, "hi", { principal: agent });
    expect(result.message).toMatchObject({ role: "assistant", user_id: "agent" });
    expect(w.messages.rows.get(result.message.id)).toEqual(result.message);
  });

  it("answers 503 with the client's key when PostgreSQL cannot be asked for it either", async () => {
    const { w, thread } = setup();
    w.redisDown();
    w.messages.fail("findById");
    const error = await caught(post(w, thread.id, "x", { clientMessageId: "c-1" }));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ code: "service_unavailable", clientMessageId: "c-1" });
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("answers 503 with the server-made key when the commit fails; a retry with it finds the message the commit stored", async () => {
    const { w, thread } = setup();
    w.redisDown();
    w.messages.timeOutAfterNext("commit");

    const error = (await caught(post(w, thread.id, "x"))) as ServiceUnavailableError;

    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error.clientMessageId).toMatch(SERVER_KEY);
    expect(error.cause).toMatchObject({ maybeStored: true });
    const retry = await post(w, thread.id, "x", { clientMessageId: error.clientMessageId ?? "" });
    expect(retry).toMatchObject({ replayed: true, durability: "committed" });
    expect(w.messages.threadMessages(thread.id)).toEqual([retry.message]);
  });

  it("answers 503 when the thread store is down too", async () => {
    const { w, thread } = setup();
    w.redisDown();
    w.threads.down = true;
    const error = await caught(post(w, thread.id, "x"));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(w.messages.calls).toEqual([]);
  });

  it("answers 503 when the hot tier does not know the thread and the thread store is down", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.threads.down = true;
    const error = await caught(post(w, thread.id, "x"));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(w.publisher.calls).toEqual([]);
  });
});

describe("Acceptor.accept (sync mode, the rollback switch)", () => {
  it("commits with the seq the hot tier reserved, publishes nothing and makes the message visible", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.registry.addSubscription("conn-bob", thread.id);
    const now = w.clock.now();

    const result = await post(w, thread.id, "legacy", { clientMessageId: "c-1" });

    expect(result).toMatchObject({
      replayed: false,
      durability: "committed",
      degraded: false,
      cache: "written",
    });
    expect(result.message.seq).toBe(redisSeq(now));
    expect(result.message.id).toBe(messageIdFor(thread.id, "alice", "c-1"));
    expect(w.messages.callsTo("commit")).toEqual([[result.message]]);
    expect(w.messages.outbox).toEqual([result.message.id]);
    expect(w.publisher.calls).toEqual([]);
    expect(w.cache.callsTo("store")).toEqual([[result.message, expect.objectContaining({ queued: false })]]);
    expect(result.timings.map((t) => t.name)).toContain("db");
    expect(w.notifier.eventsFor("conn-bob")).toEqual([
      { type: "message.created", ...result.position, message: toWire(result.message) },
    ]);
  });

  it("fans out to subscribers except the sender's connection", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.registry.addSubscription("conn-alice", thread.id);
    w.registry.addSubscription("conn-bob", thread.id);
    const result = await post(w, thread.id, "x", { originConnectionId: "conn-alice" });
    expect(result.delivery.sent).toBe(1);
    expect(w.notifier.framesFor("conn-alice")).toEqual([]);
    expect(w.notifier.eventsFor("conn-bob")).toHaveLength(1);
  });

  it("replays a retry with the same key as committed, without a second commit", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.registry.addSubscription("conn-bob", thread.id);
    const first = await post(w, thread.id, "once", { clientMessageId: "c-1" });
    const retry = await post(w, thread.id, "once", { clientMessageId: "c-1" });
    expect(retry).toMatchObject({ replayed: true, durability: "committed", cache: "skipped" });
    expect(retry.message).toEqual(first.message);
    expect(w.messages.callsTo("commit")).toHaveLength(1);
    expect(w.notifier.framesFor("conn-bob")).toHaveLength(1);
  });

  it("lets PostgreSQL allocate the seq (commit with seq null) when the hot tier is unreachable", async () => {
    const { w, thread } = setup({ mode: "sync" });
    w.redisDown();

    const result = await post(w, thread.id, "x");

    const [commitArgs] = w.messages.callsTo("commit");
    expect(commitArgs?.[0]).toMatchObject({ seq: null, content: "x", thread_id: thread.id });
    expect(result).toMatchObject({
      durability: "committed",
      degraded: false,
      cache: "skipped",
      delivery: NO_DELIVERY,
    });
    expect(result.message.seq).toBe(postgresSeq(w.clock.now()));
    expect(w.publisher.calls).toEqual([]);
  });

  it("answers thread_not_found for another user's thread without committing", async () => {
    const { w, thread } = setup({ mode: "sync" });
    expectThreadNotFound(await caught(post(w, thread.id, "x", { principal: bob })));
    expect(w.messages.callsTo("commit")).toEqual([]);
  });

  it("answers thread_not_found, and abandons the reservation, when the commit finds no thread", async () => {
    const w = createWorld({ mode: "sync" });
    const ghost = w.cachedThread("alice");
    w.threads.rows.delete(ghost.id);
    expectThreadNotFound(await caught(post(w, ghost.id, "x")));
    expect(releases(w)).toEqual(["abandoned"]);
  });

  it("answers 503 with the key to retry with when PostgreSQL is down", async () => {
    const { w, thread } = setup({ mode: "sync" });
    // The commit timed out: it may have been stored.
    w.messages.fail("commit", w.messages.timedOut());
    const error = await caught(post(w, thread.id, "x", { clientMessageId: "c-1" }));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ clientMessageId: "c-1", cause: expect.any(WriteFailedError) });
    expect(releases(w)).toEqual(["unknown"]);
    expect(w.publisher.calls).toEqual([]);
  });
});
