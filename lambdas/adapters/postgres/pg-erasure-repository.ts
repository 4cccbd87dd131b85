/**
 * Erasure records, thread tombstones and the deletes themselves, in PostgreSQL. A batch of threads
 * is tombstoned and deleted in one transaction; the rows of their messages, feedback and outbox go
 * with them (ON DELETE CASCADE).
 *
 * Against a persist consumer inserting the thread's messages at the same time: the thread rows are
 * locked first (FOR UPDATE conflicts with the KEY SHARE lock a foreign key check takes), so an
 * insert that committed first is read and deleted here, and one that comes after finds the thread
 * gone and the tombstone (pg-message-repository.ts).
 */
import type pg from "pg";
import { idempotencyKey } from "../../core/ids.ts";
import type {
  ErasedThread,
  EraseThreadsInput,
  Erasure,
  ErasureKind,
  ErasureProgress,
  ErasureRepository,
  NewErasure,
} from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

const COLUMNS = `id, kind, subject, requested_by, requested_at_ms, threads, messages, feedback, redis_keys,
  clickhouse_remaining, stage, postgres_done_at_ms, redis_done_at_ms, clickhouse_done_at_ms, completed_at_ms,
  due_at_ms, attempts, last_error`;

type ErasureRow = {
  [K in keyof Erasure]: Erasure[K] extends number | null ? string | number | null : Erasure[K];
};

const num = (v: string | number | null): number | null => (v === null ? null : Number(v));

const toErasure = (r: ErasureRow): Erasure => ({
  id: r.id,
  kind: r.kind,
  subject: r.subject,
  requested_by: r.requested_by,
  requested_at_ms: Number(r.requested_at_ms),
  threads: Number(r.threads),
  messages: Number(r.messages),
  feedback: Number(r.feedback),
  redis_keys: Number(r.redis_keys),
  clickhouse_remaining: num(r.clickhouse_remaining),
  stage: r.stage,
  postgres_done_at_ms: num(r.postgres_done_at_ms),
  redis_done_at_ms: num(r.redis_done_at_ms),
  clickhouse_done_at_ms: num(r.clickhouse_done_at_ms),
  completed_at_ms: num(r.completed_at_ms),
  due_at_ms: Number(r.due_at_ms),
  attempts: Number(r.attempts),
  last_error: r.last_error,
});

/** A thread's last activity: its newest message (by the (thread_id, seq) index), else its creation. */
const LAST_ACTIVITY = `COALESCE((SELECT m.created_at_ms FROM messages m WHERE m.thread_id = t.id
  ORDER BY m.seq DESC LIMIT 1), t.created_at_ms)`;

const INSERT_ERASURE = `INSERT INTO erasures (id, kind, subject, requested_by, requested_at_ms, stage, postgres_done_at_ms, due_at_ms)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $5) RETURNING ${COLUMNS}`;

const erasureParams = (e: NewErasure) => [
  e.id,
  e.kind,
  e.subject,
  e.requested_by,
  e.requested_at_ms,
  e.stage,
  e.postgres_done_at_ms,
];

/** Columns `update` may set, in the order of its parameters. */
const PROGRESS_FIELDS = [
  "stage",
  "redis_keys",
  "clickhouse_remaining",
  "postgres_done_at_ms",
  "redis_done_at_ms",
  "clickhouse_done_at_ms",
  "completed_at_ms",
  "due_at_ms",
  "attempts",
  "last_error",
] as const satisfies readonly (keyof ErasureProgress)[];

export class PgErasureRepository implements ErasureRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly guard: TierGuard,
  ) {}

  eraseThreads(input: EraseThreadsInput): Promise<ErasedThread[]> {
    return this.guard.run(async () => {
      const client = await this.pool.connect();
      try {
        await client.query("BEGIN");
        const { rows: locked } = await client.query<{ id: string; owner_id: string }>(
          `SELECT id, owner_id FROM threads t WHERE id = ANY($1::uuid[]) AND ($2::text IS NULL OR owner_id = $2)
              AND ($3::bigint IS NULL OR ${LAST_ACTIVITY} < $3)
            ORDER BY id FOR UPDATE`,
          [input.threadIds, input.ownerId ?? null, input.idleBefore ?? null],
        );
        if (locked.length === 0) {
          await client.query("ROLLBACK");
          return [];
        }
        if (input.create !== undefined) await client.query(INSERT_ERASURE, erasureParams(input.create));
        const ids = locked.map((t) => t.id);
        const { rows: messages } = await client.query<{
          id: string;
          thread_id: string;
          user_id: string;
          client_message_id: string | null;
        }>(
          "SELECT id, thread_id, user_id, client_message_id FROM messages WHERE thread_id = ANY($1::uuid[])",
          [ids],
        );
        const { rows: feedback } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM message_feedback f JOIN messages m ON m.id = f.message_id
            WHERE m.thread_id = ANY($1::uuid[])`,
          [ids],
        );
        await client.query(
          `INSERT INTO thread_tombstones (thread_id, owner_id, erasure_id, erased_at_ms)
           SELECT t.id, t.owner_id, $2, $3 FROM threads t WHERE t.id = ANY($1::uuid[])
           ON CONFLICT DO NOTHING`,
          [ids, input.erasureId, input.nowMs],
        );
        await client.query("DELETE FROM threads WHERE id = ANY($1::uuid[])", [ids]);
        await client.query(
          "UPDATE erasures SET threads = threads + $2, messages = messages + $3, feedback = feedback + $4 WHERE id = $1",
          [input.erasureId, ids.length, messages.length, feedback[0]?.n ?? 0],
        );
        await client.query("COMMIT");
        return ids.map((threadId) => {
          const own = messages.filter((m) => m.thread_id === threadId);
          return {
            threadId,
            messageIds: own.map((m) => m.id),
            // As the hot tier keys them (a message without a client id: by its own id).
            idempotencyKeys: own.map((m) => idempotencyKey(m.user_id, m.client_message_id ?? `id:${m.id}`)),
          };
        });
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    });
  }

  ownedThreads(userId: string, limit: number): Promise<string[]> {
    return this.ids("SELECT id FROM threads WHERE owner_id = $1 LIMIT $2", [userId, limit]);
  }

  expiredThreads(cutoffMs: number, limit: number): Promise<string[]> {
    // A thread's last activity: its newest message (by the (thread_id, seq) index), else its creation.
    return this.ids(
      `SELECT t.id FROM threads t WHERE t.created_at_ms < $1 AND ${LAST_ACTIVITY} < $1 LIMIT $2`,
      [cutoffMs, limit],
    );
  }

  erasedThreads(erasureId: string, after: string | null, limit: number): Promise<string[]> {
    return this.ids(
      `SELECT thread_id AS id FROM thread_tombstones
        WHERE erasure_id = $1 AND ($2::uuid IS NULL OR thread_id > $2::uuid) ORDER BY thread_id LIMIT $3`,
      [erasureId, after, limit],
    );
  }

  create(erasure: NewErasure): Promise<Erasure> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ErasureRow>(INSERT_ERASURE, erasureParams(erasure));
      return toErasure(rows[0] as ErasureRow);
    });
  }

  get(id: string): Promise<Erasure | null> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ErasureRow>(`SELECT ${COLUMNS} FROM erasures WHERE id = $1`, [
        id,
      ]);
      return rows[0] === undefined ? null : toErasure(rows[0]);
    });
  }

  pending(kind: ErasureKind): Promise<number> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM erasures WHERE kind = $1 AND completed_at_ms IS NULL",
        [kind],
      );
      return rows[0]?.n ?? 0;
    });
  }

  claim(id: string, nowMs: number, leaseUntilMs: number): Promise<Erasure | null> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ErasureRow>(
        `UPDATE erasures SET lease_until_ms = $3
          WHERE id = $1 AND completed_at_ms IS NULL AND lease_until_ms <= $2
         RETURNING ${COLUMNS}`,
        [id, nowMs, leaseUntilMs],
      );
      return rows[0] === undefined ? null : toErasure(rows[0]);
    });
  }

  stalled(dueBeforeMs: number, nowMs: number, limit: number): Promise<string[]> {
    return this.ids(
      `SELECT id FROM erasures
        WHERE completed_at_ms IS NULL AND due_at_ms < $1 AND lease_until_ms <= $2
        ORDER BY due_at_ms LIMIT $3`,
      [dueBeforeMs, nowMs, limit],
    );
  }

  update(id: string, progress: ErasureProgress): Promise<void> {
    return this.guard.run(async () => {
      const set = PROGRESS_FIELDS.filter((f) => progress[f] !== undefined);
      await this.pool.query(
        `UPDATE erasures SET ${[...set.map((f, i) => `${f} = $${i + 2}`), "lease_until_ms = 0"].join(", ")} WHERE id = $1`,
        [id, ...set.map((f) => progress[f])],
      );
    });
  }

  private ids(sql: string, params: unknown[]): Promise<string[]> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ id: string }>(sql, params);
      return rows.map((r) => r.id);
    });
  }
}
