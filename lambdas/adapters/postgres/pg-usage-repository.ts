/**
 * A thread's totals from PostgreSQL, in one statement: its messages walk the (thread_id, seq)
 * index, and their feedback is found by message id through message_feedback's primary key.
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
SELECT count(*) AS total,
       count(*) FILTER (WHERE m.role = 'user') AS role_user,
       count(*) FILTER (WHERE m.role = 'assistant') AS role_assistant,
       count(*) FILTER (WHERE m.role = 'system') AS role_system,
       count(*) FILTER (WHERE m.role = 'assistant' AND m.state = 'streaming') AS state_streaming,
       count(*) FILTER (WHERE m.role = 'assistant' AND m.state = 'complete') AS state_complete,
       count(*) FILTER (WHERE m.role = 'assistant' AND m.state = 'cancelled') AS state_cancelled,
       count(*) FILTER (WHERE m.role = 'assistant' AND m.state = 'error') AS state_error,
       COALESCE(sum((m.usage->>'input_tokens')::bigint), 0) AS input_tokens,
       COALESCE(sum((m.usage->>'output_tokens')::bigint), 0) AS output_tokens,
       COALESCE(sum(f.up), 0) AS feedback_up,
       COALESCE(sum(f.down), 0) AS feedback_down
  FROM messages m
  LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE rating = 'up') AS up,
           count(*) FILTER (WHERE rating = 'down') AS down
      FROM message_feedback WHERE message_id = m.id
  ) f ON m.role = 'assistant'
 WHERE m.thread_id = $1::uuid`;

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
