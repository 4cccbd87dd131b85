/** Threads in PostgreSQL. */
import type pg from "pg";
import type { JsonObject, Thread } from "../../core/model.ts";
import type { ThreadCursor, ThreadInstall, ThreadRepository } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

const COLUMNS = "id, owner_id, title, metadata, created_at_ms";

interface ThreadRow {
  id: string;
  owner_id: string;
  title: string | null;
  metadata: JsonObject;
  created_at_ms: string;
}

const toThread = (row: ThreadRow): Thread => {
  const ms = Number(row.created_at_ms);
  return {
    id: row.id,
    owner_id: row.owner_id,
    title: row.title,
    metadata: row.metadata,
    created_at: Math.floor(ms / 1000),
    created_at_ms: ms,
  };
};

export class PgThreadRepository implements ThreadRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly guard: TierGuard,
  ) {}

  create(thread: Thread): Promise<Thread> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ThreadRow>(
        `INSERT INTO threads (id, owner_id, title, metadata, created_at_ms, created_at)
         VALUES ($1, $2, $3, $4::jsonb, $5::bigint, to_timestamp($5::bigint / 1000.0)) RETURNING ${COLUMNS}`,
        [thread.id, thread.owner_id, thread.title, JSON.stringify(thread.metadata), thread.created_at_ms],
      );
      return toThread(rows[0] as ThreadRow);
    });
  }

  get(id: string): Promise<Thread | null> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ThreadRow>(`SELECT ${COLUMNS} FROM threads WHERE id = $1`, [id]);
      return rows[0] === undefined ? null : toThread(rows[0]);
    });
  }

  getForInstall(id: string): Promise<ThreadInstall | null> {
    return this.guard.run(async () => {
      // The highest seq of a stored message, or one PostgreSQL allocated itself (cache-down lane).
      const { rows } = await this.pool.query<ThreadRow & { last: string }>(
        `SELECT ${COLUMNS}, GREATEST(last_seq,
                COALESCE((SELECT max(seq) FROM messages WHERE thread_id = t.id), 0)) AS last
           FROM threads t WHERE id = $1`,
        [id],
      );
      const row = rows[0];
      return row === undefined ? null : { thread: toThread(row), lastSeq: Number(row.last), genesis: false };
    });
  }

  listByOwner(ownerId: string, page: { limit: number; after?: ThreadCursor }): Promise<Thread[]> {
    return this.guard.run(async () => {
      const { rows } =
        page.after === undefined
          ? await this.pool.query<ThreadRow>(
              `SELECT ${COLUMNS} FROM threads WHERE owner_id = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2`,
              [ownerId, page.limit],
            )
          : await this.pool.query<ThreadRow>(
              `SELECT ${COLUMNS} FROM threads WHERE owner_id = $1 AND (created_at_ms, id) < ($2, $3::uuid)
                ORDER BY created_at_ms DESC, id DESC LIMIT $4`,
              [ownerId, page.after.created_at_ms, page.after.id, page.limit],
            );
      return rows.map(toThread);
    });
  }

  listByAgent(agent: string, page: { limit: number; after?: ThreadCursor }): Promise<Thread[]> {
    return this.guard.run(async () => {
      // The typeof condition is the predicate of the partial index threads_agent_recent (and keeps
      // a number or object under `agent` from matching its text).
      const { rows } =
        page.after === undefined
          ? await this.pool.query<ThreadRow>(
              `SELECT ${COLUMNS} FROM threads
                WHERE jsonb_typeof(metadata->'agent') = 'string' AND metadata->>'agent' = $1
                ORDER BY created_at_ms DESC, id DESC LIMIT $2`,
              [agent, page.limit],
            )
          : await this.pool.query<ThreadRow>(
              `SELECT ${COLUMNS} FROM threads
                WHERE jsonb_typeof(metadata->'agent') = 'string' AND metadata->>'agent' = $1
                  AND (created_at_ms, id) < ($2, $3::uuid)
                ORDER BY created_at_ms DESC, id DESC LIMIT $4`,
              [agent, page.after.created_at_ms, page.after.id, page.limit],
            );
      return rows.map(toThread);
    });
  }
}
