import { describe, expect, it } from "vitest";
import type { Message } from "../../lambdas/core/model.ts";
import { type QueueRecord, serializeAnalyticsEnvelope } from "../../lambdas/core/records.ts";
import { createWorld, makeMessage, makeThread } from "../support/fakes.ts";

const thread = makeThread("alice");
const messagesOf = (seqs: number[], createdAtMs = 1_750_000_000_000): Message[] =>
  seqs.map((seq) => makeMessage(thread, seq, { created_at_ms: createdAtMs }));

let recordNo = 0;
const recordOf = (messages: readonly Message[], receiveCount = 1): QueueRecord => ({
  id: `a${recordNo++}`,
  body: serializeAnalyticsEnvelope(messages),
  receiveCount,
});

const setup = () => createWorld({ retry: { baseDelaySeconds: 2, maxDelaySeconds: 30 } });

describe("ArchiveService.process", () => {
  it("archives every message of every record in one insert, deduplicated by id", async () => {
    const w = setup();
    const [m1, m2, m3] = messagesOf([1, 2, 3]) as [Message, Message, Message];

    const outcome = await w.archiveService.process([recordOf([m1, m2]), recordOf([m2, m3]), recordOf([m1])]);

    expect(w.store.inserts).toEqual([[m1, m2, m3]]);
    expect(outcome).toMatchObject({ failures: [], rows: 3, inserts: 1 });
  });

  it("measures each archived message's lag from created_at_ms", async () => {
    const w = setup();
    const now = w.clock.now();
    const outcome = await w.archiveService.process([
      recordOf(messagesOf([1], now - 1500)),
      recordOf(messagesOf([2], now - 20)),
    ]);
    expect(outcome.lagsMs).toEqual([1500, 20]);
  });

  it("is harmless on redelivery: the archive keeps one row per message", async () => {
    const w = setup();
    const records = [recordOf(messagesOf([1, 2]))];
    await w.archiveService.process(records);
    const again = await w.archiveService.process(records);
    expect(again.failures).toEqual([]);
    expect(w.store.rows.size).toBe(2);
  });

  it("fails poison records with retryDelaySeconds null and archives the rest", async () => {
    const w = setup();
    const good = messagesOf([1]);
    const poison: QueueRecord[] = [
      { id: "not-json", body: "][", receiveCount: 5 },
      { id: "empty", body: JSON.stringify({ v: 1, messages: [] }), receiveCount: 1 },
      { id: "bad-seq", body: JSON.stringify({ v: 1, messages: [{ ...good[0], seq: -1 }] }), receiveCount: 1 },
    ];

    const outcome = await w.archiveService.process([...poison, recordOf(good)]);

    expect(outcome.failures.map((f) => [f.id, f.retryDelaySeconds])).toEqual([
      ["not-json", null],
      ["empty", null],
      ["bad-seq", null],
    ]);
    expect(outcome).toMatchObject({ rows: 1, inserts: 1 });
    expect(w.store.inserts).toEqual([good]);
    expect(w.diagnostics.messages().filter((m) => m === "poison record on analytics queue")).toHaveLength(2);
    expect(w.diagnostics.messages()).toContain("analytics record has rows that cannot be archived");
  });

  it("archives the valid messages of a record that also carries an invalid one, and fails the record as poison", async () => {
    const w = setup();
    const list = messagesOf([1, 2, 3]);
    const record: QueueRecord = {
      id: "mixed",
      body: JSON.stringify({ v: 1, messages: [list[0], { ...list[1], role: "bot" }, list[2]] }),
      receiveCount: 1,
    };

    const outcome = await w.archiveService.process([record]);

    expect(w.store.inserts).toEqual([[list[0], list[2]]]);
    expect(outcome.rows).toBe(2);
    expect(outcome.failures).toEqual([
      {
        id: "mixed",
        reason: expect.stringMatching(/^message 1 does not match its schema/),
        retryDelaySeconds: null,
      },
    ]);
  });

  it("issues no insert when every record is poison", async () => {
    const w = setup();
    const outcome = await w.archiveService.process([{ id: "x", body: "{}", receiveCount: 1 }]);
    expect(outcome).toEqual({
      failures: [{ id: "x", reason: expect.any(String), retryDelaySeconds: null }],
      rows: 0,
      inserts: 0,
      lagsMs: [],
      erased: 0,
    });
    expect(w.store.calls).toEqual([]);
  });

  it("fails every record with a growing delay when ClickHouse is down", async () => {
    const w = setup();
    w.store.fail("insert");
    const records = [
      recordOf(messagesOf([1]), 1),
      recordOf(messagesOf([2]), 3),
      recordOf(messagesOf([3]), 8),
    ];

    const outcome = await w.archiveService.process(records);

    expect(outcome.failures).toEqual(
      records.map((r, i) => ({
        id: r.id,
        reason: "clickhouse unavailable: down",
        retryDelaySeconds: [2, 8, 30][i],
      })),
    );
    expect(outcome).toMatchObject({ rows: 0, inserts: 1, lagsMs: [] });
  });

  it("fails every record with a growing delay, inserting nothing, when the tombstone check finds ClickHouse down", async () => {
    const w = setup();
    w.store.down = true;
    const records = [recordOf(messagesOf([1]), 1), recordOf(messagesOf([2]), 3)];

    const outcome = await w.archiveService.process(records);

    expect(outcome.failures.map((f) => [f.id, f.retryDelaySeconds])).toEqual([
      [records[0]?.id, 2],
      [records[1]?.id, 8],
    ]);
    expect(outcome).toMatchObject({ rows: 0, inserts: 0, erased: 0 });
    expect(w.store.callsTo("insert")).toEqual([]);
  });

  it("drops the rows of erased threads (a tombstone in ClickHouse) and archives the rest", async () => {
    const w = setup();
    const [kept, gone] = [messagesOf([1]), messagesOf([2])];
    const erasedThread = gone[0]?.thread_id as string;
    const dropped = gone.map((m) => ({ ...m, thread_id: erasedThread }));
    w.store.erased.add(erasedThread);
    const keptThread = kept.map((m) => ({ ...m, thread_id: "0192d7a0-0000-7000-8000-0000000000aa" }));

    const outcome = await w.archiveService.process([recordOf(keptThread, 1), recordOf(dropped, 1)]);

    expect(outcome).toMatchObject({ failures: [], rows: keptThread.length, erased: dropped.length });
    expect([...w.store.rows.values()].map((m) => m.thread_id)).toEqual(keptThread.map((m) => m.thread_id));
  });

  it("isolates the bad record, one insert per record, when the batch insert fails for a non-transient reason", async () => {
    const w = setup();
    const [m1, m2, m3, m4] = messagesOf([1, 2, 3, 4]) as [Message, Message, Message, Message];
    w.store.rejectIds.add(m3.id);
    const records = [recordOf([m1, m2]), recordOf([m3]), recordOf([m4])];

    const outcome = await w.archiveService.process(records);

    expect(outcome.failures).toEqual([
      {
        id: records[1]?.id,
        reason: `row ${m3.id} refused: cannot parse row ${m3.id}`,
        retryDelaySeconds: null,
      },
    ]);
    expect(outcome).toMatchObject({ rows: 3, inserts: 4 });
    expect(w.store.inserts).toEqual([[m1, m2], [m4]]);
    expect(w.diagnostics.messages()).toContain("analytics insert failed; isolating the bad rows");
  });

  it("archives every other row of a large record with one bad row, and fails only that record", async () => {
    const w = setup();
    const big = messagesOf(Array.from({ length: 300 }, (_, i) => i + 1));
    const bad = big[137] as Message;
    w.store.rejectIds.add(bad.id);
    const other = messagesOf([1001]);

    const outcome = await w.archiveService.process([recordOf(big), recordOf(other)]);

    expect(outcome.failures).toEqual([
      {
        id: expect.any(String),
        reason: `row ${bad.id} refused: cannot parse row ${bad.id}`,
        retryDelaySeconds: null,
      },
    ]);
    expect(outcome.rows).toBe(300);
    expect([...w.store.rows.keys()].sort()).toEqual(
      [...big, ...other]
        .filter((m) => m.id !== bad.id)
        .map((m) => m.id)
        .sort(),
    );
    // Halving finds one bad row among 300 in a few inserts, not one per row.
    expect(outcome.inserts).toBeLessThanOrEqual(2 + 2 * Math.ceil(Math.log2(300)));
  });

  it("counts a message repeated inside one record once, also when records are isolated", async () => {
    const w = setup();
    const [m1, bad] = messagesOf([1, 2]) as [Message, Message];
    w.store.rejectIds.add(bad.id);

    const outcome = await w.archiveService.process([recordOf([m1, m1]), recordOf([bad])]);

    expect(w.store.inserts).toEqual([[m1]]);
    expect(outcome.rows).toBe(1);
    expect(outcome.lagsMs).toHaveLength(1);
  });

  it("splits a single record whose insert failed at once, archives its good rows and fails it as poison", async () => {
    const w = setup();
    const list = messagesOf([1, 2]);
    w.store.rejectIds.add(list[1]?.id ?? "");
    const outcome = await w.archiveService.process([recordOf(list, 4)]);
    expect(outcome.failures).toEqual([
      {
        id: expect.any(String),
        reason: `row ${list[1]?.id} refused: cannot parse row ${list[1]?.id}`,
        retryDelaySeconds: null,
      },
    ]);
    // The batch insert, then one insert per half.
    expect(outcome).toMatchObject({ rows: 1, inserts: 3 });
    expect(w.store.inserts).toEqual([[list[0]]]);
  });

  it("fails the records still to be isolated as transient when ClickHouse goes down meanwhile", async () => {
    const w = setup();
    const [m1, m2, m3] = messagesOf([1, 2, 3]) as [Message, Message, Message];
    w.store.rejectIds.add(m1.id);
    const records = [recordOf([m1]), recordOf([m2]), recordOf([m3])];
    let inserts = 0;
    const insert = w.store.insert.bind(w.store);
    w.store.insert = async (messages) => {
      if (++inserts === 2) w.store.down = true;
      return insert(messages);
    };

    const outcome = await w.archiveService.process(records);

    expect(
      outcome.failures.map((f) => [f.id, f.retryDelaySeconds === null ? "poison" : "transient"]),
    ).toEqual([
      [records[0]?.id, "transient"],
      [records[1]?.id, "transient"],
      [records[2]?.id, "transient"],
    ]);
  });

  it("archives what the persist consumer forwarded", async () => {
    const w = setup();
    const t = w.seedThread("alice");
    const list = [makeMessage(t, 1), makeMessage(t, 2)];
    await w.persistService.process(
      list.map((message, i) => ({
        id: `p${i}`,
        body: JSON.stringify({ v: 1, message, owner_id: "alice", accepted_at_ms: message.created_at_ms }),
        receiveCount: 1,
      })),
    );

    const outcome = await w.archiveService.process(w.analytics.records());

    expect(outcome).toMatchObject({ failures: [], rows: 2 });
    expect([...w.store.rows.values()]).toEqual(list);
  });
});
