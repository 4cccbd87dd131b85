/**
 * ClickHouse DDL, versioned. Written for ClickHouse 18.16 (the oldest we run) and current
 * ClickHouse alike: no DateTime64, LowCardinality, Map or TTL; statements are idempotent because
 * ClickHouse has no transactional DDL.
 */
export interface ClickHouseMigration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

export const CLICKHOUSE_MIGRATIONS: readonly ClickHouseMigration[] = [
  {
    version: 1,
    name: "messages archive, deduplicated by message id",
    statements: [
      // ReplacingMergeTree collapses rows with the same sorting key (thread_id, id) at merge time;
      // queries that must see each message once use FINAL (or GROUP BY id).
      `CREATE TABLE IF NOT EXISTS messages (
        id                 String,
        thread_id          String,
        seq                UInt64,
        role               String,
        user_id            String,
        content            String,
        metadata           String,
        client_message_id  String,
        created_at         DateTime,
        created_at_ms      UInt64,
        archived_at_ms     UInt64
      ) ENGINE = ReplacingMergeTree(archived_at_ms)
        PARTITION BY toYYYYMM(created_at)
        ORDER BY (thread_id, id)`,
    ],
  },
  {
    version: 2,
    name: "replies that stream (state, usage, timings) and feedback",
    statements: [
      // One ALTER (18.16 has no ADD COLUMN IF NOT EXISTS): a rerun after it applied is told the
      // columns exist, which migrate.ts takes as done.
      `ALTER TABLE messages
        ADD COLUMN state           String DEFAULT 'complete',
        ADD COLUMN finish_reason   String DEFAULT '',
        ADD COLUMN model           String DEFAULT '',
        ADD COLUMN input_tokens    UInt64 DEFAULT 0,
        ADD COLUMN output_tokens   UInt64 DEFAULT 0,
        ADD COLUMN first_delta_ms  Nullable(UInt32),
        ADD COLUMN duration_ms     Nullable(UInt32)`,
      // The latest rating of each (message, user); a removed one is kept as deleted = 1.
      `CREATE TABLE IF NOT EXISTS feedback (
        message_id     String,
        thread_id      String,
        user_id        String,
        rating         String,
        reason         String,
        model          String,
        deleted        UInt8,
        created_at     DateTime,
        updated_at_ms  UInt64
      ) ENGINE = ReplacingMergeTree(updated_at_ms)
        PARTITION BY toYYYYMM(created_at)
        ORDER BY (message_id, user_id)`,
    ],
  },
  {
    version: 3,
    name: "tombstones of erased threads",
    statements: [
      // Checked by the analytics consumer before every insert: a row of an erased thread that was
      // still in flight is dropped. Kept for good (an id and a time per thread).
      `CREATE TABLE IF NOT EXISTS erased_threads (
        thread_id     String,
        erased_at_ms  UInt64
      ) ENGINE = ReplacingMergeTree(erased_at_ms)
        ORDER BY thread_id`,
    ],
  },
];
