/**
 * In-memory fakes of the erasure ports (lambdas/core/ports.ts), beside fakes.ts and with the same
 * outage switch. The repository follows the PostgreSQL adapter's rules (the repositories contract
 * runs the same cases against both): a batch is tombstoned and deleted at once, with the thread's
 * messages and outbox entries; the record is written with it or not at all; a lease keeps a second
 * worker off an erasure.
 */
import { idempotencyKey } from "../../lambdas/core/ids.ts";
import type {
  ArchiveEraser,
  ErasedThread,
  EraseThreadsInput,
  Erasure,
  ErasureKind,
  ErasureProgress,
  ErasureRepository,
  NewErasure,
} from "../../lambdas/core/ports.ts";
import { ConstraintError, type FakeMessageRepository, type FakeThreadRepository, TierFake } from "./fakes.ts";

type Held = Erasure & { lease_until_ms: number };

export class FakeErasureRepository extends TierFake<keyof ErasureRepository> implements ErasureRepository {
  readonly records = new Map<string, Held>();
  /** thread id → the erasure that tombstoned it. */
  readonly tombstones = new Map<string, string>();

  constructor(
    private readonly threads: FakeThreadRepository,
    private readonly messages: FakeMessageRepository,
  ) {
    super("postgres");
  }

  async eraseThreads(input: EraseThreadsInput): Promise<ErasedThread[]> {
    this.enter("eraseThreads", input);
    const ids = input.threadIds
      .filter((id) => {
        const t = this.threads.rows.get(id);
        return (
          t !== undefined &&
          (input.ownerId === undefined || t.owner_id === input.ownerId) &&
          (input.idleBefore === undefined || this.lastActivity(id) < input.idleBefore)
        );
      })
      .sort();
    if (ids.length === 0) return [];
    if (input.create !== undefined) this.insert(input.create);
    const record = this.records.get(input.erasureId);
    if (record === undefined) throw new ConstraintError(`no erasure ${input.erasureId} (foreign key)`);
    const erased: ErasedThread[] = [];
    let messageCount = 0;
    for (const id of ids) {
      const own = this.messages.threadMessages(id);
      for (const m of own) {
        this.messages.rows.delete(m.id);
        const at = this.messages.outbox.indexOf(m.id);
        if (at >= 0) this.messages.outbox.splice(at, 1);
      }
      this.threads.rows.delete(id);
      this.tombstones.set(id, input.erasureId);
      this.messages.tombstones.add(id);
      messageCount += own.length;
      erased.push({
        threadId: id,
        messageIds: own.map((m) => m.id),
        idempotencyKeys: own.map((m) => idempotencyKey(m.user_id, m.client_message_id ?? `id:${m.id}`)),
      });
    }
    this.records.set(record.id, {
      ...record,
      threads: record.threads + ids.length,
      messages: record.messages + messageCount,
    });
    return erased;
  }

  async ownedThreads(userId: string, limit: number): Promise<string[]> {
    this.enter("ownedThreads", userId, limit);
    return [...this.threads.rows.values()]
      .filter((t) => t.owner_id === userId)
      .slice(0, limit)
      .map((t) => t.id);
  }

  async expiredThreads(cutoffMs: number, limit: number): Promise<string[]> {
    this.enter("expiredThreads", cutoffMs, limit);
    return [...this.threads.rows.values()]
      .filter((t) => this.lastActivity(t.id) < cutoffMs)
      .slice(0, limit)
      .map((t) => t.id);
  }

  /** The thread's newest message, else its creation (epoch ms). */
  private lastActivity(threadId: string): number {
    const thread = this.threads.rows.get(threadId);
    return this.messages.threadMessages(threadId).at(-1)?.created_at_ms ?? thread?.created_at_ms ?? 0;
  }

  async erasedThreads(erasureId: string, after: string | null, limit: number): Promise<string[]> {
    this.enter("erasedThreads", erasureId, after, limit);
    return [...this.tombstones]
      .filter(([id, e]) => e === erasureId && (after === null || id > after))
      .map(([id]) => id)
      .sort()
      .slice(0, limit);
  }

  async create(erasure: NewErasure): Promise<Erasure> {
    this.enter("create", erasure);
    return this.view(this.insert(erasure));
  }

  async get(id: string): Promise<Erasure | null> {
    this.enter("get", id);
    const held = this.records.get(id);
    return held === undefined ? null : this.view(held);
  }

  async pending(kind: ErasureKind): Promise<number> {
    this.enter("pending", kind);
    return [...this.records.values()].filter((e) => e.kind === kind && e.completed_at_ms === null).length;
  }

  async claim(id: string, nowMs: number, leaseUntilMs: number): Promise<Erasure | null> {
    this.enter("claim", id, nowMs, leaseUntilMs);
    const held = this.records.get(id);
    if (held === undefined || held.completed_at_ms !== null || held.lease_until_ms > nowMs) return null;
    this.records.set(id, { ...held, lease_until_ms: leaseUntilMs });
    return this.view(held);
  }

  async stalled(dueBeforeMs: number, nowMs: number, limit: number): Promise<string[]> {
    this.enter("stalled", dueBeforeMs, nowMs, limit);
    return [...this.records.values()]
      .filter((e) => e.completed_at_ms === null && e.due_at_ms < dueBeforeMs && e.lease_until_ms <= nowMs)
      .sort((a, b) => a.due_at_ms - b.due_at_ms)
      .slice(0, limit)
      .map((e) => e.id);
  }

  async update(id: string, progress: ErasureProgress): Promise<void> {
    this.enter("update", id, progress);
    const held = this.records.get(id);
    if (held === undefined) return;
    const set = Object.fromEntries(Object.entries(progress).filter(([, v]) => v !== undefined));
    this.records.set(id, { ...held, ...set, lease_until_ms: 0 });
  }

  private insert(e: NewErasure): Held {
    if (this.records.has(e.id)) throw new ConstraintError(`duplicate erasure ${e.id}`);
    const held: Held = {
      ...e,
      threads: 0,
      messages: 0,
      feedback: 0,
      redis_keys: 0,
      clickhouse_remaining: null,
      redis_done_at_ms: null,
      clickhouse_done_at_ms: null,
      completed_at_ms: null,
      due_at_ms: e.requested_at_ms,
      attempts: 0,
      last_error: null,
      lease_until_ms: 0,
    };
    this.records.set(e.id, held);
    return held;
  }

  private view({ lease_until_ms: _, ...erasure }: Held): Erasure {
    return erasure;
  }
}

/**
 * ClickHouse's side: rows per thread, tombstones, and deletes that take effect only after
 * `applyAfter` looks (as a mutation runs in the background).
 */
export class FakeArchiveEraser extends TierFake<keyof ArchiveEraser> implements ArchiveEraser {
  readonly rows = new Map<string, number>();
  readonly tombstones = new Set<string>();
  /** Looks (`remaining`) before a delete takes effect. */
  applyAfter = 0;
  private readonly deleting = new Map<string, number>();

  constructor() {
    super("clickhouse");
  }

  async tombstone(threadIds: readonly string[], _nowMs: number): Promise<void> {
    this.enter("tombstone", threadIds);
    for (const id of threadIds) this.tombstones.add(id);
  }

  async erase(threadIds: readonly string[]): Promise<void> {
    this.enter("erase", threadIds);
    for (const id of threadIds) {
      if (this.applyAfter === 0) this.rows.delete(id);
      else this.deleting.set(id, this.applyAfter);
    }
  }

  async remaining(threadIds: readonly string[]): Promise<number> {
    this.enter("remaining", threadIds);
    let total = 0;
    for (const id of threadIds) {
      const looks = this.deleting.get(id);
      if (looks !== undefined) {
        if (looks <= 1) {
          this.deleting.delete(id);
          this.rows.delete(id);
        } else this.deleting.set(id, looks - 1);
      }
      total += this.rows.get(id) ?? 0;
    }
    return total;
  }
}
