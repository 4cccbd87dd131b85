/**
 * The erasure's steps against the fakes: who may delete, what each step does and records, the
 * settle time, retries while a tier is down, leases, the worker's records, retention.
 */
import { describe, expect, it } from "vitest";
import { ErasureService, ErasureWorker, erasureRecordBody } from "../../lambdas/core/erasure-service.ts";
import { ForbiddenError, NotFoundError, ServiceUnavailableError } from "../../lambdas/core/errors.ts";
import type { Principal } from "../../lambdas/core/model.ts";
import type { ErasureQueue } from "../../lambdas/core/ports.ts";
import { FakeArchiveEraser, FakeErasureRepository } from "../support/erasure-fakes.ts";
import { createWorld, FakeHotTierEraser, makeMessage } from "../support/fakes.ts";
import { caught } from "./caught.ts";

const SETTLE_MS = 90_000;

const alice: Principal = { userId: "alice", roles: [] };
const bob: Principal = { userId: "bob", roles: [] };
const agent: Principal = { userId: "helper", roles: ["service"] };
const admin: Principal = { userId: "ops", roles: ["admin"] };

class RecordingQueue implements ErasureQueue {
  readonly scheduled: { id: string; delaySeconds: number }[] = [];
  failing = false;
  async schedule(id: string, delaySeconds: number): Promise<void> {
    if (this.failing) throw new Error("queue down");
    this.scheduled.push({ id, delaySeconds });
  }
}

const setup = (options: { retentionDays?: number; batchThreads?: number } = {}) => {
  const w = createWorld();
  const erasures = new FakeErasureRepository(w.threads, w.messages);
  const hot = new FakeHotTierEraser(w.cache, w.registry);
  const archive = new FakeArchiveEraser();
  const queue = new RecordingQueue();
  const deps = {
    erasures,
    hot,
    access: w.access,
    archive,
    fanout: w.fanout,
    registry: w.registry,
    queue,
    clock: w.clock,
    diagnostics: w.diagnostics,
  };
  const service = new ErasureService(deps, {
    settleMs: SETTLE_MS,
    tombstoneTtlSeconds: 3690,
    batchThreads: options.batchThreads ?? 50,
    chunkThreads: 500,
    leaseMs: 60_000,
    retryDelayMs: 5000,
    maxRetryDelayMs: 900_000,
    verifyEveryMs: 2000,
    kickDelaySeconds: 90,
    ...(options.retentionDays !== undefined ? { retentionDays: options.retentionDays } : {}),
  });
  /** A thread of alice's with messages, cached and followed by a connection. */
  const busyThread = async (owner = "alice", messages = 3) => {
    const thread = w.cachedThread(owner);
    for (let seq = 1; seq <= messages; seq++) {
      const m = makeMessage(thread, seq * 1000, { user_id: owner, client_message_id: `c-${seq}` });
      w.messages.rows.set(m.id, m);
    }
    archive.rows.set(thread.id, messages);
    return thread;
  };
  /** Runs the worker until the erasure is complete or waits; answers what it waited for. */
  const advance = (id: string) => service.advance(id, 10_000);
  return { w, erasures, hot, archive, queue, service, busyThread, advance };
};

describe("ErasureService.deleteThread", () => {
  it("deletes in PostgreSQL and Redis at once, tells the subscribers, and hands the rest to the worker", async () => {
    const s = setup();
    const thread = await s.busyThread();
    await s.w.registry.register({ connectionId: "conn-1", principal: alice, connectedAt: s.w.clock.now() });
    await s.w.registry.subscribe("conn-1", thread.id);
    s.w.registry.threadSubscribers.set(thread.id, new Set(["conn-1"]));

    const id = await s.service.deleteThread(alice, thread.id);

    expect(s.w.threads.rows.has(thread.id)).toBe(false);
    expect(s.w.messages.threadMessages(thread.id)).toEqual([]);
    expect(s.w.messages.tombstones.has(thread.id)).toBe(true);
    expect(s.w.cache.states.has(thread.id)).toBe(false);
    expect(s.w.notifier.eventsFor("conn-1")).toEqual([
      expect.objectContaining({ type: "thread.deleted", thread_id: thread.id }),
    ]);
    expect(s.w.registry.connectionThreads.get("conn-1")?.has(thread.id) ?? false).toBe(false);
    // Told before the hot tier is cleared, for after the request can have ended.
    expect(s.queue.scheduled).toEqual([{ id, delaySeconds: 90 }]);
    expect(await s.erasures.get(id)).toMatchObject({
      kind: "thread",
      subject: thread.id,
      requested_by: "alice",
      stage: "clickhouse",
      threads: 1,
      messages: 3,
    });
    // From then on, the thread is not found.
    expect(await caught(s.w.access.accessible(alice, thread.id))).toBeInstanceOf(NotFoundError);
    expect(await caught(s.service.deleteThread(alice, thread.id))).toBeInstanceOf(NotFoundError);
  });

  it("is the owner's: another user learns nothing (404), a service principal is refused (403)", async () => {
    const s = setup();
    const thread = await s.busyThread();
    expect(await caught(s.service.deleteThread(bob, thread.id))).toBeInstanceOf(NotFoundError);
    expect(await caught(s.service.deleteThread(agent, thread.id))).toBeInstanceOf(ForbiddenError);
    expect(s.w.threads.rows.has(thread.id)).toBe(true);
    expect(s.erasures.records.size).toBe(0);
  });

  it("answers 503 and deletes nothing when PostgreSQL is down", async () => {
    const s = setup();
    const thread = await s.busyThread();
    s.erasures.down = true;
    expect(await caught(s.service.deleteThread(alice, thread.id))).toBeInstanceOf(ServiceUnavailableError);
    expect(s.w.threads.rows.has(thread.id)).toBe(true);
    expect(s.w.cache.states.has(thread.id)).toBe(true);
    expect(s.hot.callsTo("forget")).toEqual([]);
  });

  it("leaves the hot tier to the worker's sweep when Redis is down, and still answers", async () => {
    const s = setup();
    const thread = await s.busyThread();
    s.hot.down = true;
    const id = await s.service.deleteThread(alice, thread.id);
    expect(await s.erasures.get(id)).toMatchObject({ stage: "redis", redis_keys: 0 });
    s.hot.down = false;
    await s.advance(id);
    expect(s.hot.callsTo("sweep")[0]).toEqual([[thread.id]]);
    expect(s.w.cache.states.has(thread.id)).toBe(false);
  });

  it("still answers when the worker cannot be told (the relay resumes the erasure later)", async () => {
    const s = setup();
    const thread = await s.busyThread();
    s.queue.failing = true;
    const id = await s.service.deleteThread(alice, thread.id);
    s.queue.failing = false;
    s.w.clock.advance(16 * 60_000);
    expect(await s.service.resumeStalled(s.w.clock.now(), 15 * 60_000)).toBe(1);
    expect(s.queue.scheduled).toEqual([{ id, delaySeconds: 0 }]);
  });
});

describe("ErasureService.advance (the worker)", () => {
  it("tombstones and deletes in ClickHouse, waits the settle time, sweeps and deletes again, and completes when ClickHouse shows nothing", async () => {
    const s = setup();
    const thread = await s.busyThread();
    const id = await s.service.deleteThread(alice, thread.id);
    s.archive.applyAfter = 2;

    expect(await s.advance(id)).toBe(SETTLE_MS);
    expect(s.archive.tombstones.has(thread.id)).toBe(true);
    expect(s.archive.callsTo("erase")).toHaveLength(1);
    expect(await s.erasures.get(id)).toMatchObject({
      stage: "settle",
      due_at_ms: s.w.clock.now() + SETTLE_MS,
    });
    // Not due yet: nothing happens.
    s.w.clock.advance(SETTLE_MS - 1);
    expect(await s.advance(id)).toBe(1);
    expect(s.hot.callsTo("sweep")).toHaveLength(0);

    s.w.clock.advance(1);
    // The second pass; ClickHouse still applies its delete at the first look.
    expect(await s.advance(id)).toBe(2000);
    expect(s.hot.callsTo("sweep")).toEqual([[[thread.id]]]);
    expect(s.archive.callsTo("erase")).toHaveLength(2);
    expect(await s.erasures.get(id)).toMatchObject({ stage: "verify", clickhouse_remaining: 3 });

    s.w.clock.advance(2000);
    expect(await s.advance(id)).toBeNull();
    const done = await s.erasures.get(id);
    expect(done).toMatchObject({ stage: "done", clickhouse_remaining: 0, completed_at_ms: s.w.clock.now() });
    expect(done?.redis_done_at_ms).not.toBeNull();
    expect(s.archive.rows.has(thread.id)).toBe(false);
    // Complete: a later record finds nothing to do.
    expect(await s.advance(id)).toBeNull();
    expect((await s.service.status(admin, id)).status).toBe("complete");
  });

  it("holds the erasure at its step while ClickHouse is down, retrying later and later, and completes once it is back", async () => {
    const s = setup();
    const thread = await s.busyThread();
    const id = await s.service.deleteThread(alice, thread.id);
    s.archive.down = true;

    expect(await s.advance(id)).toBe(5000);
    expect(await s.erasures.get(id)).toMatchObject({
      stage: "clickhouse",
      attempts: 1,
      last_error: expect.stringContaining("clickhouse"),
    });
    s.w.clock.advance(5000);
    expect(await s.advance(id)).toBe(10_000);
    expect(s.w.diagnostics.warnings.some((w) => w.message.includes("erasure step failed"))).toBe(true);

    s.archive.down = false;
    s.w.clock.advance(10_000);
    expect(await s.advance(id)).toBe(SETTLE_MS);
    s.w.clock.advance(SETTLE_MS);
    expect(await s.advance(id)).toBeNull();
    expect(await s.erasures.get(id)).toMatchObject({ stage: "done", last_error: null });
  });

  it("keeps a second worker off an erasure another one holds", async () => {
    const s = setup();
    const thread = await s.busyThread();
    const id = await s.service.deleteThread(alice, thread.id);
    expect(await s.erasures.claim(id, s.w.clock.now(), s.w.clock.now() + 60_000)).not.toBeNull();
    expect(await s.advance(id)).toBeNull();
    expect(s.archive.callsTo("tombstone")).toEqual([]);
  });
});

describe("ErasureService.eraseUser", () => {
  it("erases every thread of the user, batch by batch, and no one else's", async () => {
    const s = setup({ batchThreads: 2 });
    const threads = [];
    for (let i = 0; i < 5; i++) threads.push(await s.busyThread("carol", 2));
    const bobs = await s.busyThread("bob", 1);

    expect(await caught(s.service.eraseUser(alice, "carol"))).toBeInstanceOf(ForbiddenError);
    const erasure = await s.service.eraseUser(admin, "carol");
    expect(erasure).toMatchObject({ kind: "user", subject: "carol", requested_by: "ops", stage: "postgres" });
    expect(s.queue.scheduled).toEqual([{ id: erasure.id, delaySeconds: 0 }]);

    expect(await s.advance(erasure.id)).toBe(SETTLE_MS);
    expect(s.erasures.callsTo("eraseThreads")).toHaveLength(3);
    for (const t of threads) expect(s.w.threads.rows.has(t.id)).toBe(false);
    expect(s.w.threads.rows.has(bobs.id)).toBe(true);
    expect(await s.erasures.get(erasure.id)).toMatchObject({ threads: 5, messages: 10, stage: "settle" });
    expect(await s.erasures.erasedThreads(erasure.id, null, 10)).toEqual(threads.map((t) => t.id).sort());
  });

  it("reports progress to admins and to whoever asked, and to no one else", async () => {
    const s = setup();
    const thread = await s.busyThread();
    const id = await s.service.deleteThread(alice, thread.id);
    expect(await s.service.status(admin, id)).toMatchObject({
      id,
      status: "in_progress",
      tiers: { postgres: { state: "done" }, redis: { state: "pending" }, clickhouse: { state: "pending" } },
    });
    expect((await s.service.status(alice, id)).id).toBe(id);
    expect(await caught(s.service.status(bob, id))).toBeInstanceOf(NotFoundError);
  });
});

describe("ErasureService.applyRetention", () => {
  const DAY = 86_400_000;

  it("does nothing without a retention period", async () => {
    const s = setup();
    await s.busyThread();
    expect(await s.service.applyRetention(s.w.clock.now() + 1000 * DAY)).toBeNull();
  });

  it("starts one erasure of the threads idle past the period, measured from the schedule's time", async () => {
    const s = setup({ retentionDays: 30 });
    const thread = await s.busyThread();
    const newest = Math.max(...s.w.messages.threadMessages(thread.id).map((m) => m.created_at_ms));
    expect(await s.service.applyRetention(newest + 30 * DAY)).toBeNull();

    const started = await s.service.applyRetention(newest + 30 * DAY + 1);
    expect(started).toMatchObject({
      kind: "retention",
      subject: String(newest + 1),
      requested_by: "retention",
    });
    // One at a time.
    expect(await s.service.applyRetention(newest + 31 * DAY)).toBeNull();

    await s.advance(started?.id as string);
    expect(s.w.threads.rows.has(thread.id)).toBe(false);
  });
});

describe("ErasureWorker", () => {
  it("advances each erasure of a batch once and sends its record again for the next step", async () => {
    const s = setup();
    const thread = await s.busyThread();
    const id = await s.service.deleteThread(alice, thread.id);
    s.queue.scheduled.length = 0;
    const worker = new ErasureWorker(
      s.service,
      s.queue,
      { baseDelaySeconds: 5, maxDelaySeconds: 300 },
      10_000,
      s.w.clock,
    );
    const record = (n: number, body = erasureRecordBody(id)) => ({ id: `r${n}`, body, receiveCount: 1 });

    const outcome = await worker.process([record(1), record(2), record(3, "not json")]);

    expect(outcome.failures).toEqual([{ id: "r3", reason: expect.any(String), retryDelaySeconds: null }]);
    expect(s.queue.scheduled).toEqual([{ id, delaySeconds: SETTLE_MS / 1000 }]);
    expect(s.archive.callsTo("tombstone")).toHaveLength(1);
  });
});
