/**
 * Creates the databases if they are missing and applies the versioned migrations — the same
 * migration code the deploy step runs in AWS.
 */
import pg from "pg";
import { createClickHouseClient } from "../../lambdas/adapters/clickhouse/client.ts";
import { migrateClickHouse } from "../../lambdas/adapters/clickhouse/migrate.ts";
import { migratePostgres } from "../../lambdas/adapters/postgres/migrate.ts";
import { applyRoleSettings } from "../../lambdas/adapters/postgres/session-settings.ts";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const ensurePostgres = async (
  databaseUrl: string,
  options: { recreate?: boolean } = {},
): Promise<number[]> => {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.slice(1));
  if (!IDENTIFIER.test(database)) throw new Error(`unsupported database name: ${database}`);
  const adminUrl = new URL(databaseUrl);
  adminUrl.pathname = "/postgres";
  const admin = new pg.Client({ connectionString: adminUrl.toString(), connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    if (options.recreate) await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (rowCount === 0) {
      await admin.query(`CREATE DATABASE ${database}`).catch((error: { code?: string }) => {
        if (error.code !== "42P04") throw error; // created concurrently
      });
    }
  } finally {
    await admin.end();
  }
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const applied = await migratePostgres(client);
    // As the deploy step does for the application's role: server-side limits, not startup options.
    const { rows } = await client.query<{ role: string }>("SELECT current_user AS role");
    await applyRoleSettings(client, rows[0]?.role as string, database);
    return applied;
  } finally {
    await client.end();
  }
};

export interface ClickHouseTarget {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly database: string;
}

export const ensureClickHouse = async (
  target: ClickHouseTarget,
  options: { recreate?: boolean } = {},
): Promise<number[]> => {
  if (!IDENTIFIER.test(target.database))
    throw new Error(`unsupported ClickHouse database name: ${target.database}`);
  const common = { url: target.url, username: target.username, password: target.password, timeoutMs: 30_000 };
  const admin = createClickHouseClient(common);
  const db = createClickHouseClient({ ...common, database: target.database });
  try {
    if (options.recreate) await admin.command({ query: `DROP DATABASE IF EXISTS ${target.database}` });
    return await migrateClickHouse(admin, db, target.database);
  } finally {
    await Promise.all([admin.close(), db.close()]);
  }
};
