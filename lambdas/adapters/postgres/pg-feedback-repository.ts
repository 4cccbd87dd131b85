/**
 * Feedback in PostgreSQL (`message_feedback`), and each (reply, user)'s latest change until it has
 * reached the analytics queue (`message_feedback_changes`, migration 5).
 *
 * A write and its change are one statement. The change row is written first and never deleted, so
 * it serialises concurrent writes of one (reply, user) — both statements lock it before they touch
 * `message_feedback`, in the same order — and its version (the change's `updated_at_ms`) only
 * grows, also across a removal and a new rating: ClickHouse keeps the newest.
 */
import type pg from "pg";
import type {
  Feedback,
  FeedbackEvent,
  FeedbackRating,
  FeedbackRepository,
  FeedbackTarget,
  FeedbackWrite,
} from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

interface FeedbackRow {
  message_id: string;
  user_id: string;
  rating: FeedbackRating;
  reason: string | null;
  comment: string | null;
  updated_at_ms: string;
}

interface ChangeRow {
  message_id: string;
  user_id: string;
  version: string;
  event: Omit<FeedbackEvent, "updated_at_ms">;
}

const toFeedback = (row: FeedbackRow): Feedback => ({
  message_id: row.message_id,
  user_id: row.user_id,
  rating: row.rating,
  reason: row.reason,
  comment: row.comment,
  updated_at_ms: Number(row.updated_at_ms),
});

const toEvent = (row: ChangeRow): FeedbackEvent => ({
  message_id: row.message_id,
  thread_id: row.event.thread_id,
  user_id: row.user_id,
  rating: row.event.rating,
  reason: row.event.reason,
  model: row.event.model,
  deleted: row.event.deleted,
  message_created_at: row.event.message_created_at,
  updated_at_ms: Number(row.version),
});

/** foreign_key_violation: the reply was deleted (its thread removed) while the statement ran. */
const isMissingReply = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === "23503";

const PUT_SQL = `
WITH reply AS (
  SELECT id FROM messages WHERE id = $1::uuid
),
change AS (
  INSERT INTO message_feedback_changes AS c (message_id, user_id, version, event, due_at_ms)
  SELECT id, $2, $6::bigint, $8::jsonb, $7::bigint FROM reply
  ON CONFLICT (message_id, user_id) DO UPDATE
     SET version = GREATEST(EXCLUDED.version, c.version + 1),
         event = EXCLUDED.event,
         due_at_ms = EXCLUDED.due_at_ms
  RETURNING message_id, user_id, version, event
),
saved AS (
  INSERT INTO message_feedback AS f (message_id, user_id, rating, reason, comment, updated_at_ms)
  SELECT message_id, user_id, $3, $4, $5, version FROM change
  ON CONFLICT (message_id, user_id) DO UPDATE
     SET rating = EXCLUDED.rating,
         reason = EXCLUDED.reason,
         comment = EXCLUDED.comment,
         updated_at_ms = EXCLUDED.updated_at_ms
  RETURNING message_id, user_id, rating, reason, comment, updated_at_ms
)
SELECT s.message_id, s.user_id, s.rating, s.reason, s.comment, s.updated_at_ms, c.version, c.event
  FROM saved s JOIN change c USING (message_id, user_id)`;

/** The removal keeps the rating it removes in its change (ClickHouse's row says what was removed). */
const REMOVE_SQL = `
WITH existing AS (
  SELECT rating, reason FROM message_feedback WHERE message_id = $1::uuid AND user_id = $2
),
change AS (
  INSERT INTO message_feedback_changes AS c (message_id, user_id, version, event, due_at_ms)
  SELECT $1::uuid, $2, $3::bigint,
         $5::jsonb || jsonb_build_object('rating', e.rating, 'reason', e.reason), $4::bigint
    FROM existing e
  ON CONFLICT (message_id, user_id) DO UPDATE
     SET version = GREATEST(EXCLUDED.version, c.version + 1),
         event = EXCLUDED.event,
         due_at_ms = EXCLUDED.due_at_ms
  RETURNING message_id, user_id, version, event
),
removed AS (
  DELETE FROM message_feedback f USING change
   WHERE f.message_id = change.message_id AND f.user_id = change.user_id
  RETURNING f.message_id
)
SELECT message_id, user_id, version, event FROM change`;

/** Claims due changes by moving their due time on: a concurrent sender skips them. */
const CLAIM_SQL = `
UPDATE message_feedback_changes c
   SET due_at_ms = $3::bigint
  FROM (SELECT message_id, user_id FROM message_feedback_changes
         WHERE due_at_ms IS NOT NULL AND due_at_ms <= $1::bigint
         ORDER BY due_at_ms
         LIMIT $2
         FOR UPDATE SKIP LOCKED) due
 WHERE c.message_id = due.message_id AND c.user_id = due.user_id
RETURNING c.message_id, c.user_id, c.version, c.event`;

const MARK_SENT_SQL = `
UPDATE message_feedback_changes c
   SET due_at_ms = NULL
  FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS s(message_id, user_id, version)
 WHERE c.message_id = s.message_id AND c.user_id = s.user_id AND c.version = s.version`;

export class PgFeedbackRepository implements FeedbackRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly guard: TierGuard,
  ) {}

  put(write: FeedbackWrite): Promise<{ feedback: Feedback; event: FeedbackEvent } | null> {
    const event: Omit<FeedbackEvent, "updated_at_ms"> = {
      message_id: write.message.id,
      thread_id: write.message.thread_id,
      user_id: write.userId,
      rating: write.rating,
      reason: write.reason,
      model: write.model,
      deleted: false,
      message_created_at: write.message.created_at,
    };
    return this.guard.run(async () => {
      const { rows } = await this.pool
        .query<FeedbackRow & ChangeRow>(PUT_SQL, [
          write.message.id,
          write.userId,
          write.rating,
          write.reason,
          write.comment,
          write.nowMs,
          write.dueAtMs,
          JSON.stringify(event),
        ])
        .catch((error: unknown) => {
          if (isMissingReply(error)) return { rows: [] };
          throw error;
        });
      const row = rows[0];
      return row === undefined ? null : { feedback: toFeedback(row), event: toEvent(row) };
    });
  }

  remove(target: FeedbackTarget): Promise<FeedbackEvent | null> {
    const base = {
      message_id: target.message.id,
      thread_id: target.message.thread_id,
      user_id: target.userId,
      model: target.model,
      deleted: true,
      message_created_at: target.message.created_at,
    };
    return this.guard.run(async () => {
      const { rows } = await this.pool
        .query<ChangeRow>(REMOVE_SQL, [
          target.message.id,
          target.userId,
          target.nowMs,
          target.dueAtMs,
          JSON.stringify(base),
        ])
        .catch((error: unknown) => {
          if (isMissingReply(error)) return { rows: [] };
          throw error;
        });
      const row = rows[0];
      return row === undefined ? null : toEvent(row);
    });
  }

  claimUnsent(nowMs: number, limit: number, claimUntilMs: number): Promise<FeedbackEvent[]> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<ChangeRow>(CLAIM_SQL, [nowMs, limit, claimUntilMs]);
      return rows.map(toEvent).sort((a, b) => a.updated_at_ms - b.updated_at_ms);
    });
  }

  markSent(events: readonly FeedbackEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return this.guard.run(async () => {
      await this.pool.query(MARK_SENT_SQL, [
        events.map((e) => e.message_id),
        events.map((e) => e.user_id),
        events.map((e) => e.updated_at_ms),
      ]);
    });
  }
}
