/** Threads in PostgreSQL. */
import type pg from "pg";
import type { JsonObject, Thread } from "../../core/model.ts";
import type {
  ArchivedFilter,
  ThreadChange,
  ThreadCursor,
  ThreadInstall,
  ThreadRepository,
} from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

const COLUMNS = "id, owner_id, title, metadata, created_at_ms, archived_at_ms";

interface ThreadRow {
  id: string;
  owner_id: string;
  title: string | null;
  metadata: JsonObject;
  created_at_ms: string;
  archived_at_ms: string | null;
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
    ...(row.archived_at_ms !== null ? { archived_at_ms: Number(row.archived_at_ms) } : {}),
  };
};

/** Which threads a list shows: the default leaves archived ones out. */
const ARCHIVED_FILTER: Record<ArchivedFilter, string> = {
  exclude: "archived_at_ms IS NULL",
  only: "archived_at_ms IS NOT NULL",
  include: "true",
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

  listByOwner(
    ownerId: string,
    page: { limit: number; after?: ThreadCursor; archived?: ArchivedFilter },
  ): Promise<Thread[]> {
    const shown = ARCHIVED_FILTER[page.archived ?? "exclude"];
    return this.guard.run(async () => {
      const { rows } =
        page.after === undefined
          ? await this.pool.query<ThreadRow>(
              `SELECT ${COLUMNS} FROM threads WHERE owner_id = $1 AND ${shown}
                ORDER BY created_at_ms DESC, id DESC LIMIT $2`,
              [ownerId, page.limit],
            )
          : await this.pool.query<ThreadRow>(
              `SELECT ${COLUMNS} FROM threads
                WHERE owner_id = $1 AND ${shown} AND (created_at_ms, id) < ($2, $3::uuid)
                ORDER BY created_at_ms DESC, id DESC LIMIT $4`,
              [ownerId, page.after.created_at_ms, page.after.id, page.limit],
            );
      return rows.map(toThread);
    });
  }

  update(id: string, change: ThreadChange, nowMs: number): Promise<Thread | null> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ThreadRow>(
        `UPDATE threads
            SET title = CASE WHEN $2 THEN $3 ELSE title END,
                metadata = COALESCE($4::jsonb, metadata),
                archived_at_ms = CASE WHEN $5::boolean IS NULL THEN archived_at_ms
                                      WHEN $5 THEN COALESCE(archived_at_ms, $6::bigint)
                                      ELSE NULL END
          WHERE id = $1
         RETURNING ${COLUMNS}`,
        [
          id,
          change.title !== undefined,
          change.title ?? null,
          change.metadata === undefined ? null : JSON.stringify(change.metadata),
          change.archived ?? null,
          nowMs,
        ],
      );
      return rows[0] === undefined ? null : toThread(rows[0]);
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
