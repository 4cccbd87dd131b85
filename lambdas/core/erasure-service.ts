/**
 * Erasure: a thread deleted by its owner, every thread of a user (admin), and threads past the
 * retention period — one path for all three (docs/erasure.md).
 *
 * PostgreSQL goes first, in one transaction: the threads get tombstones and are deleted with their
 * messages, feedback and outbox entries. From then on every route answers 404, and a message of
 * theirs still in flight (a queue, a consumer's batch, a retry, a redrive) finds the tombstone and
 * is dropped. The hot tier is cleared next: each thread marked gone (so a request that read the
 * thread before the delete cannot install it again), its keys and its messages' lookups removed,
 * its subscribers told `thread.deleted` and unsubscribed. Then ClickHouse: tombstones that the
 * analytics consumer checks before it inserts, and deletes of the rows. Writers that were in flight
 * during the first pass (a request, a consumer batch, the outbox relay) may still write after it;
 * they all end within the settle time, after which a second pass clears Redis and ClickHouse
 * again. The erasure is done when ClickHouse shows no row of the threads.
 *
 * The worker runs the steps after PostgreSQL's: the erasure queue's consumer is handed a record
 * naming the erasure, takes the steps that are due, and sends the record again, delayed, for the
 * next. Each step is recorded, so a tier that is down holds the erasure at its
 * step (with the error, retried with a growing delay) until it is back.
 */
import { bestEffort } from "./best-effort.ts";
import { describeError, ForbiddenError, NotFoundError, threadNotFound, unavailableAs } from "./errors.ts";
import { eventFrame } from "./events.ts";
import type { Fanout } from "./fanout.ts";
import { newId } from "./ids.ts";
import { isAdmin, type Principal } from "./model.ts";
import type {
  ArchiveEraser,
  Clock,
  ConnectionRegistry,
  Diagnostics,
  ErasedThread,
  Erasure,
  ErasureKind,
  ErasureProgress,
  ErasureQueue,
  ErasureRepository,
  HotTierEraser,
  NewErasure,
} from "./ports.ts";
import {
  InvalidRecordError,
  type QueueRecord,
  type RecordFailure,
  type RetryPolicy,
  recordFailure,
} from "./records.ts";
import type { ThreadAccess } from "./thread-access.ts";
import { isUuid } from "./validation.ts";

/**
 * An erasure's record on the analytics queue. Its body starts with this prefix (the analytics
 * consumer tells it from its other records by it, without parsing large bodies twice).
 */
const ERASURE_RECORD_PREFIX = '{"v":1,"kind":"erasure","erasure_id":';

export const erasureRecordBody = (erasureId: string): string =>
  `${ERASURE_RECORD_PREFIX}${JSON.stringify(erasureId)}}`;

export const isErasureRecord = (record: QueueRecord): boolean =>
  record.body.startsWith(ERASURE_RECORD_PREFIX);

const erasureIdOf = (record: QueueRecord): string => {
  let id: unknown;
  try {
    id = (JSON.parse(record.body) as { erasure_id?: unknown }).erasure_id;
  } catch {
    id = undefined;
  }
  if (typeof id !== "string" || !isUuid(id))
    throw new InvalidRecordError("erasure record without an erasure id");
  return id;
};

export interface ErasureOptions {
  /**
   * How long writers that were in flight when a thread was deleted may still write (the longest
   * request or consumer run): the second pass waits this long after the first.
   */
  readonly settleMs: number;
  /** How long the hot tier refuses to install a deleted thread (it outlasts the settle time). */
  readonly tombstoneTtlSeconds: number;
  /** Threads deleted per PostgreSQL transaction (user erasure, retention). */
  readonly batchThreads: number;
  /** Threads per ClickHouse statement and per Redis sweep. */
  readonly chunkThreads: number;
  /** How long a worker holds an erasure it works on. */
  readonly leaseMs: number;
  /** The first retry delay after a tier failed; it doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs: number;
  readonly maxRetryDelayMs: number;
  /** While ClickHouse's deletes run: how soon to look again. */
  readonly verifyEveryMs: number;
  /** Threads whose newest message is older than this many days are erased (absent: kept). */
  readonly retentionDays?: number;
  /** A thread delete hands its erasure to the worker for this much later (beyond the request). */
  readonly kickDelaySeconds: number;
}

/** The workers' side: only the scheduled worker has ClickHouse. */
export interface ErasureDeps {
  readonly erasures: ErasureRepository;
  readonly hot: HotTierEraser;
  readonly access: ThreadAccess;
  readonly archive?: ArchiveEraser;
  /** Tells subscribers a thread was deleted (absent: they learn it on their next read). */
  readonly fanout?: Fanout;
  readonly registry?: ConnectionRegistry;
  /** Hands erasures to the worker (absent: the relay's resumeStalled does, later). */
  readonly queue?: ErasureQueue;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

export type TierState = "done" | "pending";

/** An erasure as GET /api/admin/erasures/{id} shows it. */
export interface ErasureReport {
  readonly id: string;
  readonly kind: ErasureKind;
  readonly subject: string;
  readonly requested_by: string;
  readonly requested_at: string;
  readonly status: "in_progress" | "complete";
  readonly stage: Erasure["stage"];
  readonly counts: { threads: number; messages: number; feedback: number; redis_keys: number };
  readonly tiers: {
    readonly postgres: { state: TierState; done_at: string | null };
    readonly redis: { state: TierState; done_at: string | null };
    readonly clickhouse: { state: TierState; done_at: string | null; remaining_rows: number | null };
  };
  readonly attempts: number;
  readonly last_error: string | null;
  readonly completed_at: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const tier = (doneAt: number | null) => ({
  state: (doneAt === null ? "pending" : "done") as TierState,
  done_at: iso(doneAt),
});

export const erasureReport = (e: Erasure): ErasureReport => ({
  id: e.id,
  kind: e.kind,
  subject: e.subject,
  requested_by: e.requested_by,
  requested_at: iso(e.requested_at_ms) as string,
  status: e.completed_at_ms === null ? "in_progress" : "complete",
  stage: e.stage,
  counts: { threads: e.threads, messages: e.messages, feedback: e.feedback, redis_keys: e.redis_keys },
  tiers: {
    postgres: tier(e.postgres_done_at_ms),
    redis: tier(e.redis_done_at_ms),
    clickhouse: { ...tier(e.clickhouse_done_at_ms), remaining_rows: e.clickhouse_remaining },
  },
  attempts: e.attempts,
  last_error: e.last_error,
  completed_at: iso(e.completed_at_ms),
});

/** A step that succeeded: the failures counted before it are over. */
const DONE_OK = { attempts: 0, last_error: null } as const;

const erasureNotFound = (): NotFoundError => new NotFoundError("erasure_not_found", "No such erasure");

export class ErasureService {
  constructor(
    private readonly deps: ErasureDeps,
    private readonly options: ErasureOptions,
  ) {}

  /**
   * DELETE /api/threads/{id}: the owner's thread goes from PostgreSQL and Redis now, from
   * ClickHouse within the settle time plus a worker's run (the erasure's progress says when).
   * Answers the erasure's id.
   */
  async deleteThread(principal: Principal, threadId: string): Promise<string> {
    const thread = await this.deps.access.accessible(principal, threadId);
    if (thread.owner_id !== principal.userId) {
      throw new ForbiddenError("role_not_allowed", "only the thread's owner may delete it");
    }
    const now = this.deps.clock.now();
    const create = this.newErasure("thread", threadId, principal.userId, now, "redis");
    const erased = await this.deps.erasures
      .eraseThreads({
        erasureId: create.id,
        create,
        threadIds: [threadId],
        ownerId: principal.userId,
        nowMs: now,
      })
      .catch(unavailableAs("Thread store unavailable"));
    // Deleted by a concurrent request, between the access check and the transaction.
    if (erased.length === 0) throw threadNotFound();
    // The worker is told before the hot tier is cleared, for a little later than this request can
    // last: should the request end here, the worker does the rest (its first step is the sweep).
    await this.kick(create.id, this.options.kickDelaySeconds);
    const keys = await this.forgetHot(erased);
    const progress: ErasureProgress =
      keys === null ? { due_at_ms: now } : { stage: "clickhouse", redis_keys: keys, due_at_ms: now };
    await bestEffort(
      this.deps.diagnostics,
      "could not record the hot tier's first pass",
      { erasureId: create.id },
      () => this.deps.erasures.update(create.id, progress),
      undefined,
    );
    return create.id;
  }

  /** DELETE /api/admin/users/{userId}: every thread of the user, by the worker. */
  async eraseUser(principal: Principal, userId: string): Promise<Erasure> {
    this.requireAdmin(principal);
    const erasure = this.newErasure("user", userId, principal.userId, this.deps.clock.now(), "postgres");
    const created = await this.deps.erasures
      .create(erasure)
      .catch(unavailableAs("Erasure store unavailable"));
    await this.kick(created.id);
    return created;
  }

  /** GET /api/admin/erasures/{id}: admins, and whoever asked for it (a thread's owner). */
  async status(principal: Principal, id: string): Promise<ErasureReport> {
    const erasure = await this.deps.erasures.get(id).catch(unavailableAs("Erasure store unavailable"));
    if (erasure === null || !(isAdmin(principal) || erasure.requested_by === principal.userId)) {
      throw erasureNotFound();
    }
    return erasureReport(erasure);
  }

  /**
   * Retention, on its schedule (`nowMs`: the schedule's time): when threads have expired and no retention erasure is still
   * working, one is started (the worker erases the threads expired by then, batch by batch).
   */
  async applyRetention(nowMs: number): Promise<Erasure | null> {
    const days = this.options.retentionDays;
    if (days === undefined) return null;
    const cutoff = nowMs - days * 86_400_000;
    if ((await this.deps.erasures.pending("retention")) > 0) return null;
    if ((await this.deps.erasures.expiredThreads(cutoff, 1)).length === 0) return null;
    const created = await this.deps.erasures.create(
      // Recorded at the real time (the schedule's time only sets the cutoff).
      this.newErasure("retention", String(cutoff), "retention", this.deps.clock.now(), "postgres"),
    );
    await this.kick(created.id);
    return created;
  }

  /** Hands the erasure to the worker now (if that fails, the relay resumes it later). */
  private async kick(erasureId: string, delaySeconds = 0): Promise<void> {
    const queue = this.deps.queue;
    if (queue === undefined) return;
    await bestEffort(
      this.deps.diagnostics,
      "could not hand the erasure to the worker; the outbox relay resumes it",
      { erasureId },
      () => queue.schedule(erasureId, delaySeconds),
      undefined,
    );
  }

  /**
   * The worker (the erasure queue's consumer, given the erasure's record): takes the erasure's steps
   * that are due, until `budgetMs` is spent. Answers in how many ms it is due again (null: it is
   * complete, or another worker holds it).
   */
  async advance(erasureId: string, budgetMs: number): Promise<number | null> {
    const started = this.deps.clock.now();
    for (;;) {
      const now = this.deps.clock.now();
      const erasure = await this.deps.erasures.claim(erasureId, now, now + this.options.leaseMs);
      if (erasure === null) return null;
      if (erasure.due_at_ms > now || now - started >= budgetMs) {
        await this.deps.erasures.update(erasure.id, {});
        return Math.max(0, erasure.due_at_ms - now);
      }
      let progress: ErasureProgress;
      try {
        progress = await this.step(erasure, started + budgetMs);
      } catch (error) {
        progress = this.retryLater(erasure, error);
      }
      await this.deps.erasures.update(erasure.id, progress);
      if (progress.stage === "done") return null;
    }
  }

  /**
   * Erasures whose worker record was lost (the queue could not take it, a worker died holding
   * it): handed to the worker again. Run by the outbox relay on its schedule.
   */
  async resumeStalled(nowMs: number, graceMs: number): Promise<number> {
    const queue = this.deps.queue;
    if (queue === undefined) return 0;
    const ids = await this.deps.erasures.stalled(nowMs - graceMs, nowMs, 100);
    for (const id of ids) await queue.schedule(id, 0);
    return ids.length;
  }

  private async step(e: Erasure, deadline: number): Promise<ErasureProgress> {
    const now = (): number => this.deps.clock.now();
    switch (e.stage) {
      case "postgres": {
        // Batch by batch: each one transaction, then its first pass on the hot tier.
        let keys = e.redis_keys;
        while (now() < deadline) {
          const retention = e.kind === "retention";
          const threadIds =
            e.kind === "user"
              ? await this.deps.erasures.ownedThreads(e.subject, this.options.batchThreads)
              : retention
                ? await this.deps.erasures.expiredThreads(Number(e.subject), this.options.batchThreads)
                : [];
          if (threadIds.length === 0) {
            return {
              stage: "clickhouse",
              redis_keys: keys,
              postgres_done_at_ms: now(),
              due_at_ms: now(),
              last_error: null,
            };
          }
          // Retention checks again under the lock: a thread that got a message meanwhile stays.
          const erased = await this.deps.erasures.eraseThreads({
            erasureId: e.id,
            threadIds,
            nowMs: now(),
            ...(retention ? { idleBefore: Number(e.subject) } : {}),
          });
          if (erased.length === 0 && retention) {
            return {
              stage: "clickhouse",
              redis_keys: keys,
              postgres_done_at_ms: now(),
              due_at_ms: now(),
              ...DONE_OK,
            };
          }
          // The sweep after the settle time clears what this pass could not.
          keys += (await this.forgetHot(erased)) ?? 0;
        }
        return { redis_keys: keys, due_at_ms: now() };
      }
      case "redis": {
        // The request could not clear the hot tier: a sweep finds what the thread left there.
        const keys = await this.deps.hot.sweep(await this.erasedThreadIds(e.id));
        return { stage: "clickhouse", redis_keys: e.redis_keys + keys, due_at_ms: now(), ...DONE_OK };
      }
      case "clickhouse": {
        const archive = this.archive();
        for (const ids of this.chunks(await this.erasedThreadIds(e.id))) {
          await archive.tombstone(ids, now());
          await archive.erase(ids);
        }
        return { stage: "settle", due_at_ms: now() + this.options.settleMs, ...DONE_OK };
      }
      case "settle": {
        // Writers in flight during the first pass have ended: the second pass.
        const archive = this.archive();
        const threadIds = await this.erasedThreadIds(e.id);
        // One walk of the keyspace for every thread of the erasure.
        const keys = await this.deps.hot.sweep(threadIds);
        for (const ids of this.chunks(threadIds)) await archive.erase(ids);
        return {
          stage: "verify",
          redis_keys: e.redis_keys + keys,
          redis_done_at_ms: now(),
          due_at_ms: now(),
          ...DONE_OK,
        };
      }
      case "verify": {
        const archive = this.archive();
        let remaining = 0;
        for (const ids of this.chunks(await this.erasedThreadIds(e.id)))
          remaining += await archive.remaining(ids);
        if (remaining === 0) {
          const at = now();
          return {
            stage: "done",
            clickhouse_remaining: 0,
            clickhouse_done_at_ms: at,
            completed_at_ms: at,
            ...DONE_OK,
          };
        }
        // ClickHouse applies its deletes in the background (mutations outlive a restart): look
        // again, less often the longer it takes.
        const waited = now() - (e.redis_done_at_ms ?? now());
        return {
          clickhouse_remaining: remaining,
          due_at_ms: now() + Math.min(60_000, Math.max(this.options.verifyEveryMs, waited / 10)),
        };
      }
      case "done":
        return {};
    }
  }

  private retryLater(e: Erasure, error: unknown): ErasureProgress {
    const attempts = e.attempts + 1;
    const delay = Math.min(
      this.options.retryDelayMs * 2 ** Math.min(attempts - 1, 20),
      this.options.maxRetryDelayMs,
    );
    this.deps.diagnostics.warn("erasure step failed; retried later", {
      erasureId: e.id,
      stage: e.stage,
      attempts,
      error: describeError(error),
    });
    return {
      attempts,
      last_error: describeError(error).slice(0, 500),
      due_at_ms: this.deps.clock.now() + delay,
    };
  }

  /** Every thread the erasure tombstoned, read a page at a time. */
  private async erasedThreadIds(erasureId: string): Promise<string[]> {
    const all: string[] = [];
    for (;;) {
      const page = await this.deps.erasures.erasedThreads(
        erasureId,
        all.at(-1) ?? null,
        this.options.chunkThreads,
      );
      all.push(...page);
      if (page.length < this.options.chunkThreads) return all;
    }
  }

  /** Threads in groups of `chunkThreads` (one ClickHouse statement each). */
  private *chunks(ids: readonly string[]): Generator<readonly string[]> {
    for (let i = 0; i < ids.length; i += this.options.chunkThreads)
      yield ids.slice(i, i + this.options.chunkThreads);
  }

  /**
   * The hot tier's first pass, and `thread.deleted` to each thread's subscribers (who are then
   * unsubscribed). Null when the hot tier could not be cleared (the worker's sweep does it).
   */
  private async forgetHot(erased: readonly ErasedThread[]): Promise<number | null> {
    if (erased.length === 0) return 0;
    const forgotten = await bestEffort(
      this.deps.diagnostics,
      "could not clear deleted threads from the hot tier",
      { threads: erased.length },
      () => this.deps.hot.forget(erased, this.options.tombstoneTtlSeconds),
      null,
    );
    if (forgotten === null) return null;
    const { fanout, registry } = this.deps;
    for (const [threadId, connections] of forgotten.subscribers) {
      if (connections.length === 0) continue;
      if (fanout !== undefined) {
        await fanout.deliver(threadId, connections, eventFrame("thread.deleted", { thread_id: threadId }));
      }
      if (registry !== undefined) {
        await bestEffort(
          this.deps.diagnostics,
          "could not unsubscribe from a deleted thread",
          { threadId },
          () => Promise.all(connections.map((c) => registry.unsubscribe(c, threadId))),
          [],
        );
      }
    }
    return forgotten.keys;
  }

  private archive(): ArchiveEraser {
    if (this.deps.archive === undefined)
      throw new Error("this erasure step needs ClickHouse (the erasure worker)");
    return this.deps.archive;
  }

  private requireAdmin(principal: Principal): void {
    if (!isAdmin(principal)) throw new ForbiddenError("admin_required", "This route needs the admin role");
  }

  private newErasure(
    kind: ErasureKind,
    subject: string,
    requestedBy: string,
    nowMs: number,
    stage: "postgres" | "redis",
  ): NewErasure {
    return {
      id: newId(),
      kind,
      subject,
      requested_by: requestedBy,
      requested_at_ms: nowMs,
      stage,
      postgres_done_at_ms: stage === "postgres" ? null : nowMs,
    };
  }
}

export interface ErasureWorkOutcome {
  readonly failures: RecordFailure[];
  /** Erasures this batch has nothing more to do for (complete, or another worker holds them). */
  readonly completed: number;
}

/**
 * The erasure queue's records: each erasure is advanced, and while it is not complete
 * its record is sent again, delayed until its next step is due.
 */
export class ErasureWorker {
  constructor(
    private readonly service: ErasureService,
    private readonly queue: ErasureQueue,
    private readonly retry: RetryPolicy,
    /** Time for all the batch's erasures (below the consumer's timeout). */
    private readonly budgetMs: number,
    private readonly clock: Clock,
  ) {}

  async process(records: readonly QueueRecord[]): Promise<ErasureWorkOutcome> {
    const failures: RecordFailure[] = [];
    let completed = 0;
    const started = this.clock.now();
    const seen = new Set<string>();
    for (const record of records) {
      try {
        const id = erasureIdOf(record);
        // Two records of one erasure in a batch: one advances it.
        if (seen.has(id)) continue;
        seen.add(id);
        const left = Math.max(1000, this.budgetMs - (this.clock.now() - started));
        const dueInMs = await this.service.advance(id, left);
        if (dueInMs === null) completed++;
        else await this.queue.schedule(id, dueInMs / 1000);
      } catch (error) {
        failures.push(recordFailure(this.retry, record, error));
      }
    }
    return { failures, completed };
  }
}
