/** Applies pending ClickHouse migrations; creates the database first. */
import type { ClickHouseClient } from "@clickhouse/client";
import { CLICKHOUSE_MIGRATIONS, type ClickHouseMigration } from "./migrations/index.ts";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `admin` is a client without a default database (it may not exist yet); `db` is bound to
 * `database`.
 */
export const migrateClickHouse = async (
  admin: ClickHouseClient,
  db: ClickHouseClient,
  database: string,
  migrations: readonly ClickHouseMigration[] = CLICKHOUSE_MIGRATIONS,
): Promise<number[]> => {
  if (!IDENTIFIER.test(database)) throw new Error(`invalid ClickHouse database name: ${database}`);
  await admin.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  await db.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime)
            ENGINE = MergeTree ORDER BY version`,
  });
  const result = await db.query({ query: "SELECT version FROM schema_migrations", format: "JSONEachRow" });
  const applied = new Set((await result.json<{ version: number }>()).map((r) => Number(r.version)));
  const done: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    for (const statement of m.statements) {
      await db.command({ query: statement }).catch((error: unknown) => {
        // Code 44: a column this ALTER adds exists (the migration ran, its record did not land).
        if (/^\s*ALTER TABLE/i.test(statement) && /Code: 44|already exists/.test(String(error))) return;
        throw error;
      });
    }
    await db.insert({
      table: "schema_migrations",
      values: [{ version: m.version, name: m.name, applied_at: Math.floor(Date.now() / 1000) }],
      format: "JSONEachRow",
    });
    done.push(m.version);
  }
  return done;
};
