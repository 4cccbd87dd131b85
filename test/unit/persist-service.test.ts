import { describe, expect, it } from "vitest";
import { type Message, type Thread, toWire } from "../../lambdas/core/model.ts";
import type { MessageEnvelope } from "../../lambdas/core/ports.ts";
import type { QueueRecord } from "../../lambdas/core/records.ts";
import { createWorld, makeMessage, postInput, user } from "../support/fakes.ts";

const alice = user("alice");

const setup = () => {
  const w = createWorld({ retry: { baseDelaySeconds: 5, maxDelaySeconds: 60 } });
  const thread = w.seedThread("alice");
  return { w, thread };
};

let recordNo = 0;

const recordOf = (
  message: Message,
  options: { ownerId?: string; acceptedAtMs?: number; receiveCount?: number } = {},
): QueueRecord => {
  const envelope: MessageEnvelope = {
    v: 1,
    message,
    owner_id: options.ownerId ?? "alice",
    accepted_at_ms: options.acceptedAtMs ?? message.created_at_ms,
  };
  return { id: `r${recordNo++}`, body: JSON.stringify(envelope), receiveCount: options.receiveCount ?? 1 };
};

const messagesOf = (thread: Thread, seqs: number[]): Message[] => seqs.map((seq) => makeMessage(thread, seq));

describe("PersistService.process", () => {
  it("stores the whole batch in one statement and forwards the stored messages to analytics", async () => {
    const { w, thread } = setup();
    const list = messagesOf(thread, [1, 2, 3]);

    const outcome = await w.persistService.process(list.map((m) => recordOf(m)));

    expect(w.messages.callsTo("persistBatch")).toEqual([
      [list.map((message) => ({ message, ownerId: "alice" }))],
    ]);
    expect(w.messages.threadMessages(thread.id)).toEqual(list);
    expect(w.analytics.batches).toEqual([list]);
    expect(outcome).toMatchObject({ failures: [], inserted: 3, duplicates: 0, statements: 1 });
  });

  it("measures each inserted message's lag from accepted_at_ms", async () => {
    const { w, thread } = setup();
    const now = w.clock.now();
    const [a, b] = messagesOf(thread, [1, 2]) as [Message, Message];
    const outcome = await w.persistService.process([
      recordOf(a, { acceptedAtMs: now - 250 }),
      recordOf(b, { acceptedAtMs: now - 40 }),
    ]);
    expect(outcome.lagsMs).toEqual([250, 40]);
  });

  it("counts records of messages stored before as duplicates, without a lag, and forwards the stored row", async () => {
    const { w, thread } = setup();
    const [old, fresh] = messagesOf(thread, [1, 2]) as [Message, Message];
    w.messages.put(old);
    const redelivered = { ...old, content: "a different copy" };

    const outcome = await w.persistService.process([
      recordOf(redelivered, { acceptedAtMs: w.clock.now() - 999 }),
      recordOf(fresh, { acceptedAtMs: w.clock.now() - 10 }),
    ]);

    expect(outcome).toMatchObject({ failures: [], inserted: 1, duplicates: 1, lagsMs: [10] });
    expect(w.messages.rows.get(old.id)).toEqual(old);
    expect(w.analytics.batches.flat()).toEqual(expect.arrayContaining([old, fresh]));
    expect(w.analytics.batches.flat()).toHaveLength(2);
  });

  it("inserts a message delivered twice in one batch once and counts the second record as a duplicate", async () => {
    const { w, thread } = setup();
    const [m] = messagesOf(thread, [1]) as [Message];
    const outcome = await w.persistService.process([recordOf(m), recordOf(m)]);
    expect(w.messages.callsTo("persistBatch")).toEqual([[[{ message: m, ownerId: "alice" }]]]);
    expect(outcome).toMatchObject({ failures: [], inserted: 1, duplicates: 1 });
  });

  it("reports one lag per inserted message, also when the message came twice in the batch", async () => {
    const { w, thread } = setup();
    const [m] = messagesOf(thread, [1]) as [Message];
    const outcome = await w.persistService.process([
      recordOf(m, { acceptedAtMs: w.clock.now() - 30 }),
      recordOf(m, { acceptedAtMs: w.clock.now() - 30 }),
    ]);
    expect(outcome.inserted).toBe(1);
    expect(outcome.lagsMs).toEqual([30]);
  });

  it("fails poison records with retryDelaySeconds null and stores the rest of the batch", async () => {
    const { w, thread } = setup();
    const [good] = messagesOf(thread, [1]) as [Message];
    const valid = JSON.parse(recordOf(good).body) as MessageEnvelope;
    const poison: QueueRecord[] = [
      { id: "not-json", body: "{oops", receiveCount: 1 },
      { id: "wrong-version", body: JSON.stringify({ ...valid, v: 2 }), receiveCount: 1 },
      { id: "extra-field", body: JSON.stringify({ ...valid, extra: true }), receiveCount: 1 },
      {
        id: "bad-message",
        body: JSON.stringify({ ...valid, message: { ...good, thread_id: "not-a-uuid" } }),
        receiveCount: 3,
      },
    ];

    const outcome = await w.persistService.process([...poison, recordOf(good)]);

    expect(outcome.failures.map((f) => [f.id, f.retryDelaySeconds])).toEqual(
      poison.map((p) => [p.id, null] as const),
    );
    expect(outcome.failures[0]?.reason).toBe("record body is not JSON");
    expect(outcome).toMatchObject({ inserted: 1, duplicates: 0, statements: 1 });
    expect(w.messages.rows.get(good.id)).toEqual(good);
    expect(w.diagnostics.messages().filter((m) => m === "poison record on persist queue")).toHaveLength(4);
  });

  it("does not touch PostgreSQL when every record is poison", async () => {
    const { w } = setup();
    const outcome = await w.persistService.process([{ id: "x", body: "null", receiveCount: 1 }]);
    expect(outcome).toMatchObject({ inserted: 0, duplicates: 0, statements: 0, lagsMs: [] });
    expect(outcome.failures).toHaveLength(1);
    expect(w.messages.calls).toEqual([]);
    expect(w.analytics.calls).toEqual([]);
  });

  it("fails every record with a delay growing with its receive count when PostgreSQL is down", async () => {
    const { w, thread } = setup();
    w.messages.down = true;
    const list = messagesOf(thread, [1, 2, 3, 4]);
    const receiveCounts = [1, 2, 3, 9];

    const outcome = await w.persistService.process(
      list.map((m, i) => recordOf(m, { receiveCount: receiveCounts[i] ?? 1 })),
    );

    expect(outcome.failures.map((f) => f.retryDelaySeconds)).toEqual([5, 10, 20, 60]);
    expect(outcome.failures[0]?.reason).toBe("postgres unavailable: down");
    expect(outcome).toMatchObject({ inserted: 0, duplicates: 0, statements: 1, lagsMs: [] });
    expect(w.analytics.calls).toEqual([]);
  });

  it("isolates the bad record, one statement per message, when the batch fails for a non-transient reason", async () => {
    const { w, thread } = setup();
    const list = messagesOf(thread, [1, 2, 3]);
    const [a, bad, c] = list as [Message, Message, Message];
    w.messages.rejectIds.add(bad.id);
    const records = list.map((m) => recordOf(m));

    const outcome = await w.persistService.process(records);

    expect(outcome.failures).toEqual([
      { id: records[1]?.id, reason: expect.stringContaining(bad.id), retryDelaySeconds: null },
    ]);
    expect(outcome).toMatchObject({ inserted: 2, duplicates: 0, statements: 4 });
    expect(w.messages.threadMessages(thread.id)).toEqual([a, c]);
    expect(w.analytics.batches).toEqual([[a, c]]);
    expect(w.diagnostics.messages()).toContain("batch insert failed; isolating the bad records");
  });

  it("fails a single record that fails for a non-transient reason without retrying it alone", async () => {
    const { w, thread } = setup();
    const [m] = messagesOf(thread, [1]) as [Message];
    w.messages.rejectIds.add(m.id);
    const outcome = await w.persistService.process([recordOf(m, { receiveCount: 4 })]);
    expect(outcome.failures).toEqual([
      { id: expect.any(String), reason: expect.any(String), retryDelaySeconds: null },
    ]);
    expect(outcome.statements).toBe(1);
  });

  it("hands the stored messages to the outbox when the analytics queue is unreachable", async () => {
    const { w, thread } = setup();
    w.analytics.down = true;
    const list = messagesOf(thread, [1, 2]);

    const outcome = await w.persistService.process(list.map((m) => recordOf(m)));

    expect(outcome).toMatchObject({ failures: [], inserted: 2, duplicates: 0, statements: 2 });
    expect(await w.messages.pendingOutbox(10)).toEqual(list);
  });

  it("fails the stored records with a retry delay when neither the analytics queue nor the outbox takes them", async () => {
    const { w, thread } = setup();
    w.analytics.down = true;
    const list = messagesOf(thread, [1, 2]);
    const records = list.map((m) => recordOf(m, { receiveCount: 2 }));
    w.messages.fail("addToOutbox");

    const outcome = await w.persistService.process(records);

    expect(outcome.failures).toEqual(
      records.map((r) => ({ id: r.id, reason: "postgres unavailable: down", retryDelaySeconds: 10 })),
    );
    expect(outcome.inserted).toBe(2);
    expect(w.messages.threadMessages(thread.id)).toEqual(list);

    // The retry: the insert is a no-op, the forward goes through.
    w.analytics.heal();
    const retry = await w.persistService.process(records);
    expect(retry).toMatchObject({ failures: [], inserted: 0, duplicates: 2 });
    expect(w.analytics.batches).toEqual([list]);
  });

  it("does not report a negative number of duplicates when forwarding to analytics fails", async () => {
    const { w, thread } = setup();
    w.analytics.down = true;
    const outcome = await w.persistService.process(messagesOf(thread, [1, 2]).map((m) => recordOf(m)));
    expect(outcome.inserted).toBe(2);
    expect(outcome.duplicates).toBe(0);
  });

  it("persists what the accept path queued, byte for byte", async () => {
    const w = createWorld({ retry: { baseDelaySeconds: 5, maxDelaySeconds: 60 } });
    const thread = w.cachedThread("alice");
    const accepted = [];
    for (const content of ["one", "two"]) {
      accepted.push(
        (await w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput(content) }))
          .message,
      );
      w.clock.advance(1);
    }
    w.clock.advance(100);

    const outcome = await w.persistService.process(w.publisher.records());

    // Accepted at t and t+1, persisted at t+102.
    expect(outcome).toMatchObject({ failures: [], inserted: 2, duplicates: 0, lagsMs: [102, 101] });
    expect(w.messages.threadMessages(thread.id)).toEqual(accepted);
  });
});

describe("PersistService.process: confirming to the hot tier", () => {
  /** A thread in the hot tier with a subscriber, conn-bob. */
  const followed = () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    w.registry.addSubscription("conn-bob", thread.id);
    return { w, thread };
  };

  it("confirms the stored rows, as PostgreSQL returned them, to the hot tier", async () => {
    const { w, thread } = followed();
    const [old, fresh] = messagesOf(thread, [1, 2]) as [Message, Message];
    w.messages.put(old);
    await w.persistService.process([recordOf({ ...old, content: "a different copy" }), recordOf(fresh)]);
    expect(w.cache.callsTo("refresh")).toEqual([[[fresh, old]]]);
  });

  it("does not announce again what the accept path made visible (and pushed) already", async () => {
    const { w, thread } = followed();
    const { message } = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });

    await w.persistService.process(w.publisher.records());

    expect(w.notifier.eventsFor("conn-bob").map((e) => e.message)).toEqual([toWire(message)]);
    expect(w.cache.cachedSeqs(thread.id)).toEqual([message.seq]);
  });

  it("makes visible, and pushes with their own positions, messages the accept path could not show", async () => {
    const { w, thread } = followed();
    w.cache.fail("store");
    const accepted: Message[] = [];
    for (const content of ["one", "two"]) {
      const result = await w.acceptor.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput(content),
      });
      expect(result.cache).toBe("failed");
      accepted.push(result.message);
    }
    w.cache.heal();
    w.clock.advance(50);
    expect(w.notifier.calls).toEqual([]);

    const outcome = await w.persistService.process(w.publisher.records());

    expect(outcome).toMatchObject({ failures: [], inserted: 2 });
    const epoch = w.cache.states.get(thread.id)?.epoch;
    const wire = accepted.map(toWire);
    expect(w.notifier.eventsFor("conn-bob")).toEqual([
      { type: "message.created", epoch, pos: 1, settled: w.settled(), message: wire[0] },
      { type: "message.created", epoch, pos: 2, settled: w.settled(), message: wire[1] },
    ]);
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page.value.messages).toEqual(accepted);
    // A retry of either key is now a replay.
    const retry = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("one", { clientMessageId: accepted[0]?.client_message_id ?? "" }),
    });
    expect(retry).toMatchObject({ replayed: true, message: accepted[0] });
  });

  it("corrects a message the hot tier shows with another seq than PostgreSQL kept, and pushes the correction", async () => {
    // c-1 was accepted while the hot tier was unreachable (PostgreSQL allocated its seq); the
    // client retried once the hot tier was back, before the first copy was persisted.
    const { w, thread } = followed();
    w.redisDown();
    const first = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("once", { clientMessageId: "c-1" }),
    });
    w.cache.heal();
    w.registry.heal();
    w.rateLimiter.heal();
    w.clock.advance(5);
    const retry = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("once", { clientMessageId: "c-1" }),
    });
    expect(retry.message.seq).not.toBe(first.message.seq);

    await w.persistService.process(w.publisher.records());

    expect(w.messages.threadMessages(thread.id)).toEqual([first.message]);
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page.value.messages).toEqual([first.message]);
    expect(w.notifier.eventsFor("conn-bob").map((e) => [e.pos, (e.message as Message).seq])).toEqual([
      [1, retry.message.seq],
      [2, first.message.seq],
    ]);
  });

  it("hands the messages to the outbox when the hot tier cannot be told, so the relay confirms them later", async () => {
    const { w, thread } = followed();
    const list = messagesOf(thread, [1, 2]);
    w.cache.down = true;

    const outcome = await w.persistService.process(list.map((m) => recordOf(m)));

    expect(outcome).toMatchObject({ failures: [], inserted: 2, statements: 2 });
    expect(w.analytics.batches).toEqual([list]);
    expect(w.messages.outbox).toEqual(list.map((m) => m.id));
    expect(w.diagnostics.messages()).toContain(
      "analytics queue or cache unavailable; messages handed to the outbox",
    );
  });

  it("fails the records, to run them again, when neither the hot tier nor the outbox can be reached", async () => {
    const { w, thread } = followed();
    const list = messagesOf(thread, [1, 2]);
    const records = list.map((m) => recordOf(m, { receiveCount: 1 }));
    w.cache.down = true;
    w.messages.fail("addToOutbox");

    const outcome = await w.persistService.process(records);

    expect(outcome.failures).toEqual(
      records.map((r) => ({ id: r.id, reason: "postgres unavailable: down", retryDelaySeconds: 5 })),
    );
    expect(w.messages.threadMessages(thread.id)).toEqual(list);
  });
});
