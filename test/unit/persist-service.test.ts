import { describe, expect, it } from "vitest";
import type { Message, Thread } from "../../lambdas/core/model.ts";
import type { PersistEnvelope } from "../../lambdas/core/ports.ts";
import type { QueueRecord } from "../../lambdas/core/records.ts";
import { createWorld, makeMessage, postInput, user } from "../support/fakes.ts";

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
  const envelope: PersistEnvelope = {
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
    const valid = JSON.parse(recordOf(good).body) as PersistEnvelope;
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

  it("fills holes in the cached thread index with the stored messages", async () => {
    const { w, thread } = setup();
    const [first, second] = messagesOf(thread, [1, 2]) as [Message, Message];
    await w.cache.warm(thread.id, [first], true);

    await w.persistService.process([recordOf(second)]);

    expect(w.cache.callsTo("refresh")).toEqual([[[{ message: second, ownerId: "alice" }]]]);
    expect(w.cache.cachedSeqs(thread.id)).toEqual([1, 2]);
  });

  it("only warns when the cache cannot be refreshed", async () => {
    const { w, thread } = setup();
    w.redisDown();
    const outcome = await w.persistService.process(messagesOf(thread, [1]).map((m) => recordOf(m)));
    expect(outcome).toMatchObject({ failures: [], inserted: 1 });
    expect(w.diagnostics.messages()).toContain("could not refresh cache after persist");
  });

  it("persists what the accept path queued, byte for byte", async () => {
    const { w, thread } = setup();
    w.cache.threads.set(thread.id, thread);
    const accepted = [];
    for (const content of ["one", "two"]) {
      accepted.push(
        (
          await w.messageService.accept({
            principal: user("alice"),
            threadId: thread.id,
            input: postInput(content),
          })
        ).message,
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
