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
];
