/** Feedback changes on the analytics queue: the envelope, and the consumer's second lane. */
import { describe, expect, it } from "vitest";
import { packFeedbackEnvelopes } from "../../lambdas/adapters/sqs/sqs-feedback-publisher.ts";
import { ArchiveService } from "../../lambdas/core/archive-service.ts";
import type { Message } from "../../lambdas/core/model.ts";
import type { FeedbackEvent } from "../../lambdas/core/ports.ts";
import {
  parseAnalyticsEnvelope,
  type QueueRecord,
  serializeAnalyticsEnvelope,
  serializeFeedbackEnvelope,
} from "../../lambdas/core/records.ts";
import { createWorld, makeMessage, makeThread } from "../support/fakes.ts";
import { FakeFeedbackArchive } from "../support/feedback-fakes.ts";

const thread = makeThread("alice");
const reply = (seq: number): Message => makeMessage(thread, seq, { role: "assistant", user_id: "agent" });

const change = (message: Message, overrides: Partial<FeedbackEvent> = {}): FeedbackEvent => ({
  message_id: message.id,
  thread_id: message.thread_id,
  user_id: "alice",
  rating: "up",
  reason: null,
  model: "m1",
  deleted: false,
  message_created_at: message.created_at,
  updated_at_ms: 1_750_000_000_000,
  ...overrides,
});

let recordNo = 0;
const record = (body: string, receiveCount = 1): QueueRecord => ({
  id: `r${recordNo++}`,
  body,
  receiveCount,
});

const setup = (withArchive = true) => {
  const w = createWorld();
  const archive = new FakeFeedbackArchive();
  const service = new ArchiveService(
    {
      store: w.store,
      ...(withArchive ? { feedback: archive } : {}),
      clock: w.clock,
      diagnostics: w.diagnostics,
    },
    { baseDelaySeconds: 2, maxDelaySeconds: 30 },
  );
  return { w, archive, service };
};

describe("the analytics envelope", () => {
  it("reads an envelope of messages as before, and one of feedback changes, or both", () => {
    const [m] = [reply(1)];
    const e = change(m);
    expect(parseAnalyticsEnvelope(serializeAnalyticsEnvelope([m]))).toEqual({ messages: [m], invalid: [] });
    expect(parseAnalyticsEnvelope(serializeAnalyticsEnvelope([m]))).not.toHaveProperty("feedback");
    expect(parseAnalyticsEnvelope(serializeFeedbackEnvelope([e]))).toEqual({
      messages: [],
      feedback: [e],
      invalid: [],
    });
    expect(parseAnalyticsEnvelope(JSON.stringify({ v: 1, messages: [m], feedback: [e] }))).toEqual({
      messages: [m],
      feedback: [e],
      invalid: [],
    });
  });

  it("names each feedback entry that does not match its schema, keeping the others", () => {
    const good = change(reply(1));
    const parsed = parseAnalyticsEnvelope(
      JSON.stringify({ v: 1, feedback: [good, { ...good, rating: "meh" }, { ...good, extra: 1 }] }),
    );
    expect(parsed.feedback).toEqual([good]);
    expect(parsed.invalid).toEqual([
      expect.stringMatching(/^feedback 1 does not match its schema/),
      expect.stringMatching(/^feedback 2 does not match its schema/),
    ]);
  });

  it.each([
    { v: 1 },
    { v: 1, messages: [], feedback: [] },
    { v: 2, feedback: [{}] },
    { v: 1, feedback: "x" },
  ])("refuses %j", (envelope) => {
    expect(() => parseAnalyticsEnvelope(JSON.stringify(envelope))).toThrow(/schema/);
  });

  it("packs changes into bodies the parser reads, within the size limit", () => {
    const events = Array.from({ length: 40 }, (_, i) => change(reply(i + 1), { reason: "é🙂".repeat(30) }));
    const bodies = packFeedbackEnvelopes(events, 4096);
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(4096);
    expect(bodies.flatMap((b) => parseAnalyticsEnvelope(b).feedback ?? [])).toEqual(events);
  });
});

describe("ArchiveService with feedback", () => {
  it("archives messages and feedback of a batch in one insert per table", async () => {
    const { w, archive, service } = setup();
    const [m1, m2] = [reply(1), reply(2)];
    const outcome = await service.process([
      record(serializeAnalyticsEnvelope([m1, m2])),
      record(serializeFeedbackEnvelope([change(m1), change(m2, { rating: "down" })])),
    ]);
    expect(outcome).toMatchObject({ failures: [], rows: 4, inserts: 2 });
    expect(outcome.lagsMs).toHaveLength(2);
    expect(w.store.inserts).toEqual([[m1, m2]]);
    expect(archive.inserts).toHaveLength(1);
    expect(archive.live().map((e) => e.rating)).toEqual(["up", "down"]);
  });

  it("sends only the newest change of a (reply, user) of a batch, in whatever order the records came", async () => {
    const { archive, service } = setup();
    const m = reply(1);
    const older = change(m, { rating: "up", updated_at_ms: 10 });
    const newer = change(m, { deleted: true, updated_at_ms: 11 });
    await service.process([
      record(serializeFeedbackEnvelope([newer])),
      record(serializeFeedbackEnvelope([older])),
    ]);
    expect(archive.inserts).toEqual([[newer]]);
    expect(archive.live()).toEqual([]);
  });

  it("isolates a refused feedback row: the other rows are archived, its record fails as poison", async () => {
    const { w, archive, service } = setup();
    const [m1, m2, m3] = [reply(1), reply(2), reply(3)];
    archive.rejectIds.add(m2.id);
    const records = [
      record(serializeFeedbackEnvelope([change(m1), change(m2)])),
      record(serializeFeedbackEnvelope([change(m3)])),
    ];
    const outcome = await service.process(records);
    expect(outcome.failures).toEqual([
      {
        id: records[0]?.id,
        reason: `feedback ${m2.id}/alice refused: cannot parse feedback row ${m2.id}`,
        retryDelaySeconds: null,
      },
    ]);
    expect(
      archive
        .live()
        .map((e) => e.message_id)
        .sort(),
    ).toEqual([m1.id, m3.id].sort());
    expect(w.diagnostics.messages()).toContain("analytics record has rows that cannot be archived");
  });

  it("fails every record with a growing delay when ClickHouse goes down at the feedback insert", async () => {
    const { archive, service } = setup();
    archive.down = true;
    const m = reply(1);
    const records = [
      record(serializeAnalyticsEnvelope([m]), 1),
      record(serializeFeedbackEnvelope([change(m)]), 3),
    ];
    const outcome = await service.process(records);
    expect(outcome.failures).toEqual([
      { id: records[0]?.id, reason: "clickhouse unavailable: down", retryDelaySeconds: 2 },
      { id: records[1]?.id, reason: "clickhouse unavailable: down", retryDelaySeconds: 8 },
    ]);
  });

  it("does not try the feedback insert when the messages insert found ClickHouse down", async () => {
    const { w, archive, service } = setup();
    w.store.fail("insert");
    const m = reply(1);
    const outcome = await service.process([
      record(JSON.stringify({ v: 1, messages: [m], feedback: [change(m)] })),
    ]);
    expect(outcome).toMatchObject({ rows: 0, inserts: 1 });
    expect(archive.calls).toEqual([]);
  });

  it("fails a record with feedback as poison where no feedback archive is configured, archiving its messages", async () => {
    const { w, service } = setup(false);
    const m = reply(1);
    const both = record(JSON.stringify({ v: 1, messages: [m], feedback: [change(m)] }));
    const outcome = await service.process([both, record(serializeAnalyticsEnvelope([reply(2)]))]);
    expect(outcome.failures).toEqual([
      { id: both.id, reason: expect.stringContaining("no feedback archive"), retryDelaySeconds: null },
    ]);
    expect(w.store.rows.size).toBe(2);
  });
});
