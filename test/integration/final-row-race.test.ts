/**
 * A streamed reply's final form racing its opened row on real PostgreSQL: the persist consumer
 * that stores the final must not take the opened row, committed by another transaction after its
 * statement's snapshot, for the stored answer (the final would be acknowledged and lost).
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgMessageRepository } from "../../lambdas/adapters/postgres/pg-message-repository.ts";
import { PgThreadRepository } from "../../lambdas/adapters/postgres/pg-thread-repository.ts";
import { isPgOutage } from "../../lambdas/adapters/postgres/pool.ts";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import { type Message, toEpochSeconds } from "../../lambdas/core/model.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

let pool: pg.Pool;
let messages: PgMessageRepository;
let threads: PgThreadRepository;

beforeAll(() => {
  pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 4 });
  const guard = new TierGuard("postgres", { failureThreshold: 1000, halfOpenAfterMs: 1000 }, isPgOutage);
  messages = new PgMessageRepository(pool, guard);
  threads = new PgThreadRepository(pool, guard);
});

afterAll(async () => {
  await pool.end();
});

describe("a final reply stored while its opened row is being inserted", () => {
  it("replaces the opened row once the other transaction commits, and answers the final", async () => {
    const ms = Date.now();
    const thread = await threads.create({
      id: randomUUID(),
      owner_id: "alice",
      title: null,
      metadata: {},
      created_at: toEpochSeconds(ms),
      created_at_ms: ms,
    });
    const opened: Message = {
      id: randomUUID(),
      thread_id: thread.id,
      seq: ms * 1000,
      role: "assistant",
      user_id: "agent",
      content: "",
      metadata: {},
      client_message_id: randomUUID(),
      created_at: toEpochSeconds(ms),
      created_at_ms: ms,
      state: "streaming",
    };
    const { state: _state, ...base } = opened;
    const final: Message = {
      ...base,
      content: "all of it",
      state: "complete",
      finish_reason: "stop",
      duration_ms: 5,
    };

    // Another consumer is inserting the opened row, and has not committed yet.
    const other = await pool.connect();
    try {
      await other.query("BEGIN");
      await other.query(
        `INSERT INTO messages (id, thread_id, seq, role, user_id, content, metadata, client_message_id,
                               created_at_ms, created_at, state)
         VALUES ($1, $2, $3, 'assistant', 'agent', '', '{}', $4, $5::bigint, to_timestamp($5::bigint / 1000.0), 'streaming')`,
        [opened.id, thread.id, opened.seq, opened.client_message_id, ms],
      );
      const storing = messages.persistBatch([{ message: final, ownerId: "alice" }]);
      // The final's statement waits on the uncommitted row: let it get there, then commit.
      await waitUntilBlocked(opened.id);
      await other.query("COMMIT");
      expect(await storing).toEqual([{ message: final, inserted: true }]);
    } finally {
      other.release();
    }
    expect(await messages.findById(opened.id)).toEqual({ message: final, ownerId: "alice" });
  });
});

/** Until some session waits on a lock (the final's INSERT on the uncommitted row). */
const waitUntilBlocked = async (messageId: string): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE '%jsonb_to_recordset%' AND datname = current_database()`,
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`no statement waited on the row of ${messageId}`);
};
