/**
 * Messages in PostgreSQL, the system of record. Every write is idempotent on the message id and
 * answers with the stored row, so a retry or a redelivery learns what was kept. Each write is one
 * statement (no explicit transaction); a second one runs only when a concurrent write of the same
 * id won the race after the first took its snapshot.
 *
 * `ON CONFLICT DO NOTHING` has no conflict target on purpose: two concurrent inserts of one
 * message collide on (thread_id, seq) as well as on the id, and with `ON CONFLICT (id)` the loser
 * fails on the other unique index. A row that is then neither inserted nor found by its id lost
 * its (thread_id, seq) to a different message: that is a seq collision, raised as an error.
 */
import type pg from "pg";
import type {
  HistoryQuery,
  JsonObject,
  Message,
  MessageFailure,
  MessageRole,
  MessageState,
  MessageUsage,
} from "../../core/model.ts";
import { streamFields } from "../../core/model.ts";
import type {
  CommitResult,
  MessageRepository,
  OutboxRetryPolicy,
  OwnedMessage,
  StoredPage,
} from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { NEXT_SEQ_SQL } from "./next-seq.ts";

const COLUMNS =
  "id, thread_id, seq, role, user_id, content, metadata, client_message_id, created_at_ms, state, " +
  "finish_reason, usage, error, first_delta_ms, duration_ms";
const M_COLUMNS = COLUMNS.split(", ")
  .map((c) => `m.${c}`)
  .join(", ");

interface MessageRow {
  id: string;
  thread_id: string;
  seq: string;
  role: MessageRole;
  user_id: string;
  content: string;
  metadata: JsonObject;
  client_message_id: string | null;
  created_at_ms: string;
  state: MessageState;
  finish_reason: string | null;
  usage: MessageUsage | null;
  error: MessageFailure | null;
  first_delta_ms: number | null;
  duration_ms: number | null;
}

export const toMessage = (row: MessageRow): Message => {
  const ms = Number(row.created_at_ms);
  return {
    id: row.id,
    thread_id: row.thread_id,
    seq: Number(row.seq),
    role: row.role,
    user_id: row.user_id,
    content: row.content,
    metadata: row.metadata,
    client_message_id: row.client_message_id,
    created_at: Math.floor(ms / 1000),
    created_at_ms: ms,
    // A streamed reply (it has a finish reason once it ended); a message posted whole has none.
    ...(row.state !== "complete" || row.finish_reason !== null ? streamFields(row) : {}),
  };
};

/** Input rows as inserted: a message posted whole says nothing of its state. */
const INPUT_COLUMNS = COLUMNS.replace("state,", "COALESCE(state, 'complete'),");

const RECORDSET = `jsonb_to_recordset($1::jsonb) AS i(
  id uuid, thread_id uuid, seq bigint, role text, user_id text, content text, metadata jsonb,
  client_message_id text, created_at_ms bigint, state text, finish_reason text, usage jsonb, error jsonb,
  first_delta_ms integer, duration_ms integer)`;

const insertFrom = (source: string): string => `
  INSERT INTO messages (${COLUMNS}, created_at)
  SELECT ${INPUT_COLUMNS}, to_timestamp(created_at_ms / 1000.0) FROM ${source}
  ON CONFLICT DO NOTHING
  RETURNING ${COLUMNS}`;

const INSERT_FROM_INPUT = insertFrom("input");

const BY_IDS = `SELECT ${COLUMNS}, false AS inserted FROM messages WHERE id = ANY($1::uuid[])`;

const FOREIGN_KEY_VIOLATION = "23503";

/** A message's (thread_id, seq) is taken by another message: a broken seq rule, never a retry. */
export class SeqCollisionError extends Error {
  override readonly name = "SeqCollisionError";
}

/**
 * Inserted rows, plus the rows that were there before the statement (its snapshot). A streamed
 * reply's final form replaces its opened row (only that: a final never goes back to streaming,
 * and the first ending stored wins); stored first, the opened row arriving later changes nothing.
 */
const PERSIST_BATCH = `
WITH input AS (SELECT * FROM ${RECORDSET}),
upd AS (
  UPDATE messages m
     SET content = i.content, metadata = i.metadata, state = i.state, finish_reason = i.finish_reason,
         usage = i.usage, error = i.error, first_delta_ms = i.first_delta_ms, duration_ms = i.duration_ms
    FROM input i
   WHERE m.id = i.id AND m.state = 'streaming' AND i.state IS NOT NULL AND i.state <> 'streaming'
  RETURNING ${M_COLUMNS}
),
ins AS (${insertFrom("input i WHERE EXISTS (SELECT 1 FROM threads t WHERE t.id = i.thread_id)")})
SELECT ${COLUMNS}, true AS inserted FROM ins
UNION ALL
SELECT ${COLUMNS}, true AS inserted FROM upd
UNION ALL
SELECT ${M_COLUMNS}, false AS inserted FROM messages m
 WHERE m.id IN (SELECT id FROM input) AND m.id NOT IN (SELECT id FROM upd)`;

/**
 * The synchronous commit: allocates the seq when none is given (lane 500 of the hybrid clock), and
 * writes the message with its analytics outbox entry, atomically, in one statement.
 */
const COMMIT = `
WITH alloc AS (
  UPDATE threads
     SET last_seq = ${NEXT_SEQ_SQL}
   WHERE id = $2::uuid AND $3::bigint IS NULL
  RETURNING last_seq
),
input AS (
  SELECT i.id, i.thread_id, COALESCE($3::bigint, (SELECT last_seq FROM alloc)) AS seq, i.role, i.user_id,
         i.content, i.metadata, i.client_message_id, i.created_at_ms, i.state, i.finish_reason, i.usage,
         i.error, i.first_delta_ms, i.duration_ms
    FROM ${RECORDSET}
   WHERE EXISTS (SELECT 1 FROM threads WHERE id = $2::uuid)
),
ins AS (${INSERT_FROM_INPUT}),
outbox AS (INSERT INTO analytics_outbox (message_id) SELECT id FROM ins)
SELECT ${COLUMNS}, true AS inserted FROM ins
UNION ALL
SELECT ${M_COLUMNS}, false AS inserted FROM messages m WHERE m.id = (SELECT id FROM input LIMIT 1)`;

const recordsetJson = (
  messages: readonly Omit<Message, "seq" | "created_at">[] | readonly Message[],
): string =>
  JSON.stringify(
    messages.map((m) => ({
      id: m.id,
      thread_id: m.thread_id,
      seq: "seq" in m ? m.seq : null,
      role: m.role,
      user_id: m.user_id,
      content: m.content,
      metadata: m.metadata,
      client_message_id: m.client_message_id,
      created_at_ms: m.created_at_ms,
      state: m.state ?? null,
      finish_reason: m.finish_reason ?? null,
      usage: m.usage ?? null,
      error: m.error ?? null,
      first_delta_ms: m.first_delta_ms ?? null,
      duration_ms: m.duration_ms ?? null,
    })),
  );

type Row = MessageRow & { inserted: boolean };

export class PgMessageRepository implements MessageRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly guard: TierGuard,
  ) {}

  persistBatch(messages: readonly OwnedMessage[]): Promise<CommitResult[]> {
    return this.guard.run(async () => {
      const results = await this.persistOnce(messages);
      // A final whose opened row another transaction was inserting when this statement took its
      // snapshot: the UPDATE saw no row, the INSERT waited and did nothing, so the row is still
      // the opened one. A new statement sees it and replaces it (the first final stored wins).
      const finals = new Map(
        messages
          .filter((m) => m.message.state !== undefined && m.message.state !== "streaming")
          .map((m) => [m.message.id, m]),
      );
      const stale = results.filter((r) => finals.has(r.message.id) && r.message.state === "streaming");
      if (stale.length === 0) return results;
      const again = await this.persistOnce(stale.flatMap((r) => finals.get(r.message.id) ?? []));
      const redone = new Map(again.map((r) => [r.message.id, r]));
      return results.map((r) => redone.get(r.message.id) ?? r);
    });
  }

  private async persistOnce(messages: readonly OwnedMessage[]): Promise<CommitResult[]> {
    const json = recordsetJson(messages.map((m) => m.message));
    const { rows } = await this.pool.query<Row>(PERSIST_BATCH, [json]).catch((error: unknown) => {
      // A thread deleted after the statement took its snapshot: its foreign key check waited for
      // the delete and failed. A new statement no longer sees the thread, and leaves its rows out.
      if ((error as { code?: string }).code !== FOREIGN_KEY_VIOLATION) throw error;
      return this.pool.query<Row>(PERSIST_BATCH, [json]);
    });
    const results: CommitResult[] = rows.map((row) => ({ message: toMessage(row), inserted: row.inserted }));
    const seen = new Set(results.map((r) => r.message.id));
    const missing = [...new Set(messages.map((m) => m.message.id))].filter((id) => !seen.has(id));
    if (missing.length === 0) return results;
    const [{ rows: late }, erased] = await Promise.all([
      this.pool.query<Row>(BY_IDS, [missing]),
      this.tombstoned(messages.filter((m) => missing.includes(m.message.id)).map((m) => m.message.thread_id)),
    ]);
    const found = new Set(late.map((r) => r.id));
    const dropped = messages.filter((m) => !found.has(m.message.id) && erased.has(m.message.thread_id));
    const droppedIds = new Set(dropped.map((m) => m.message.id));
    const collided = missing.filter((id) => !found.has(id) && !droppedIds.has(id));
    if (collided.length > 0) {
      throw new SeqCollisionError(
        `not stored: (thread_id, seq) taken by another message, or no such thread, for ${collided.join(", ")}`,
      );
    }
    return [
      ...results,
      ...late.map((row) => ({ message: toMessage(row), inserted: false })),
      ...[...new Map(dropped.map((m) => [m.message.id, m.message])).values()].map((message) => ({
        message,
        inserted: false,
        erased: true as const,
      })),
    ];
  }

  /** Which of these threads were erased (they have a tombstone). */
  private async tombstoned(threadIds: readonly string[]): Promise<Set<string>> {
    const { rows } = await this.pool.query<{ thread_id: string }>(
      "SELECT thread_id FROM thread_tombstones WHERE thread_id = ANY($1::uuid[])",
      [[...new Set(threadIds)]],
    );
    return new Set(rows.map((r) => r.thread_id));
  }

  commit(message: Omit<Message, "seq"> & { seq: number | null }): Promise<CommitResult | null> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<Row>(COMMIT, [
        recordsetJson([message as Message]),
        message.thread_id,
        message.seq,
      ]);
      const row = rows.find((r) => r.inserted) ?? rows[0];
      if (row !== undefined) return { message: toMessage(row), inserted: row.inserted };
      // Nothing inserted and nothing seen: the thread does not exist, or a concurrent commit of the
      // same id won after this statement took its snapshot (the insert waited for it, then did
      // nothing), or the seq is taken. A new statement tells which.
      const { rows: after } = await this.pool.query<Row & { thread: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM threads WHERE id = $2) AS thread, m.*
           FROM (SELECT 1) one LEFT JOIN (${BY_IDS}) m ON true`,
        [[message.id], message.thread_id],
      );
      const winner = after[0];
      if (winner === undefined || !winner.thread) return null;
      if (winner.id === null) throw new SeqCollisionError(`(thread_id, seq) taken for ${message.id}`);
      return { message: toMessage(winner), inserted: false };
    });
  }

  findById(id: string): Promise<OwnedMessage | null> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<MessageRow & { owner_id: string }>(
        `SELECT ${M_COLUMNS}, t.owner_id FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.id = $1`,
        [id],
      );
      const row = rows[0];
      return row === undefined ? null : { message: toMessage(row), ownerId: row.owner_id };
    });
  }

  history(threadId: string, query: HistoryQuery, below?: number): Promise<StoredPage> {
    return this.guard.run(async () => {
      const fetch = query.limit + 1;
      if (query.direction === "forward") {
        const { rows } = await this.pool.query<MessageRow>(
          `SELECT ${COLUMNS} FROM messages WHERE thread_id = $1 AND seq > $2 AND seq < $3
            ORDER BY seq ASC LIMIT $4`,
          [threadId, query.after, below ?? Number.MAX_SAFE_INTEGER, fetch],
        );
        const page = rows.slice(0, query.limit).map(toMessage);
        return { messages: page, next_cursor: rows.length > query.limit ? (page.at(-1)?.seq ?? null) : null };
      }
      const top = Math.min(query.before ?? Number.MAX_SAFE_INTEGER, below ?? Number.MAX_SAFE_INTEGER);
      const { rows } = await this.pool.query<MessageRow>(
        `SELECT ${COLUMNS} FROM messages WHERE thread_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`,
        [threadId, top, fetch],
      );
      const page = rows.slice(0, query.limit).reverse().map(toMessage);
      return { messages: page, next_cursor: rows.length > query.limit ? (page[0]?.seq ?? null) : null };
    });
  }

  count(threadId: string): Promise<number> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
        [threadId],
      );
      return rows[0]?.n ?? 0;
    });
  }

  pendingOutbox(limit: number): Promise<Message[]> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<MessageRow>(
        `SELECT ${M_COLUMNS} FROM analytics_outbox o JOIN messages m ON m.id = o.message_id
          WHERE o.next_attempt_at <= clock_timestamp()
          ORDER BY o.enqueued_at LIMIT $1`,
        [limit],
      );
      return rows.map(toMessage);
    });
  }

  addToOutbox(ids: readonly string[]): Promise<void> {
    return this.guard.run(async () => {
      await this.pool.query(
        "INSERT INTO analytics_outbox (message_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
        [ids],
      );
    });
  }

  clearOutbox(ids: readonly string[]): Promise<void> {
    return this.guard.run(async () => {
      await this.pool.query("DELETE FROM analytics_outbox WHERE message_id = ANY($1::uuid[])", [ids]);
    });
  }

  deferOutbox(id: string, reason: string, policy: OutboxRetryPolicy): Promise<void> {
    return this.guard.run(async () => {
      await this.pool.query(
        `UPDATE analytics_outbox
            SET attempts = attempts + 1,
                last_error = left($2, 1000),
                next_attempt_at = CASE WHEN attempts + 1 >= $3 THEN 'infinity'::timestamptz
                  ELSE clock_timestamp() + least($4 * 2 ^ attempts, $5) * interval '1 second' END
          WHERE message_id = $1`,
        [id, reason, policy.maxAttempts, policy.baseDelaySeconds, policy.maxDelaySeconds],
      );
    });
  }

  parkedOutbox(): Promise<number> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM analytics_outbox WHERE next_attempt_at = 'infinity'",
      );
      return rows[0]?.n ?? 0;
    });
  }

  ping(): Promise<void> {
    return this.guard.run(async () => {
      await this.pool.query("SELECT 1");
    });
  }
}
