/**
 * A thread's totals from PostgreSQL, in one statement of two aggregates: the thread's messages
 * through the (thread_id, seq) index, and the feedback on its replies, joined by message id
 * (message_feedback's primary key starts with it). No further index: on a thread of 20 000
 * messages with 3 333 ratings, among 1 M messages and 163 k ratings, it takes about 50 ms; on a
 * thread of 50 messages, about a millisecond.
 */
import type pg from "pg";
import type { ThreadUsage, UsageRepository } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

/** count() and sum() come back as strings (bigint, numeric). */
interface UsageRow {
  total: string;
  role_user: string;
  role_assistant: string;
  role_system: string;
  state_streaming: string;
  state_complete: string;
  state_cancelled: string;
  state_error: string;
  input_tokens: string;
  output_tokens: string;
  feedback_up: string;
  feedback_down: string;
}

const USAGE_SQL = `
SELECT m.*, f.*
  FROM (SELECT count(*) AS total,
               count(*) FILTER (WHERE role = 'user') AS role_user,
               count(*) FILTER (WHERE role = 'assistant') AS role_assistant,
               count(*) FILTER (WHERE role = 'system') AS role_system,
               count(*) FILTER (WHERE role = 'assistant' AND state = 'streaming') AS state_streaming,
               count(*) FILTER (WHERE role = 'assistant' AND state = 'complete') AS state_complete,
               count(*) FILTER (WHERE role = 'assistant' AND state = 'cancelled') AS state_cancelled,
               count(*) FILTER (WHERE role = 'assistant' AND state = 'error') AS state_error,
               COALESCE(sum((usage->>'input_tokens')::bigint), 0) AS input_tokens,
               COALESCE(sum((usage->>'output_tokens')::bigint), 0) AS output_tokens
          FROM messages
         WHERE thread_id = $1::uuid) m,
       (SELECT count(*) FILTER (WHERE fb.rating = 'up') AS feedback_up,
               count(*) FILTER (WHERE fb.rating = 'down') AS feedback_down
          FROM message_feedback fb
          JOIN messages r ON r.id = fb.message_id
         WHERE r.thread_id = $1::uuid AND r.role = 'assistant') f`;

export class PgUsageRepository implements UsageRepository {
  constructor(
    private readonly pool: pg.Pool,
    private readonly guard: TierGuard,
  ) {}

  threadUsage(threadId: string): Promise<ThreadUsage> {
    return this.guard.run(async () => {
      const { rows } = await this.pool.query<UsageRow>(USAGE_SQL, [threadId]);
      const r = rows[0] as UsageRow;
      const n = (value: string): number => Number(value);
      return {
        messages: {
          total: n(r.total),
          user: n(r.role_user),
          assistant: n(r.role_assistant),
          system: n(r.role_system),
        },
        assistant_states: {
          streaming: n(r.state_streaming),
          complete: n(r.state_complete),
          cancelled: n(r.state_cancelled),
          error: n(r.state_error),
        },
        tokens: { input: n(r.input_tokens), output: n(r.output_tokens) },
        feedback: { up: n(r.feedback_up), down: n(r.feedback_down) },
      };
    });
  }
}
