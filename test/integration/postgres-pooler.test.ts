/**
 * PostgreSQL through PgBouncer in transaction pooling mode (scripts/services/pgbouncer.sh), the
 * stand-in for RDS Proxy: the pool configuration the functions use connects through it, a
 * startup parameter the proxy refuses is refused here too, and the server-side limits come from
 * the application's role (written by the migration), not from the connection.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createPgPool, pgPoolConfig } from "../../lambdas/adapters/postgres/pool.ts";
import { SERVER_STATEMENT_TIMEOUT_MS } from "../../lambdas/adapters/postgres/session-settings.ts";
import { TEST_DATABASE_URL } from "../support/test-env.ts";

const PGBOUNCER_PORT = process.env.TEST_PGBOUNCER_PORT ?? "6432";
const pooled = (() => {
  const url = new URL(TEST_DATABASE_URL);
  url.port = PGBOUNCER_PORT;
  return url.toString();
})();

const pools: pg.Pool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
});

describe("PostgreSQL through a transaction-pooling proxy", () => {
  it("accepts the functions' pool configuration, with the role's server-side statement timeout", async () => {
    const pool = createPgPool(
      {
        connectionString: pooled,
        ssl: false,
        max: 2,
        connectTimeoutMs: 2000,
        statementTimeoutMs: 3000,
        applicationName: "pooler-test",
      },
      () => undefined,
    );
    pools.push(pool);
    const { rows } = await pool.query<{ statement_timeout: string }>("SHOW statement_timeout");
    expect(rows[0]?.statement_timeout).toBe(`${SERVER_STATEMENT_TIMEOUT_MS / 1000}s`);
  });

  it("refuses a connection that sends statement_timeout as a startup parameter, as RDS Proxy does", async () => {
    const client = new pg.Client({
      ...pgPoolConfig({
        connectionString: pooled,
        ssl: false,
        max: 1,
        connectTimeoutMs: 2000,
        statementTimeoutMs: 3000,
        applicationName: "pooler-test",
      }),
      statement_timeout: 1000,
    });
    await expect(client.connect()).rejects.toThrow(/unsupported startup parameter: statement_timeout/);
    await client.end().catch(() => undefined);
  });
});

describe("the proxy scripts/services.sh started", () => {
  it("does not hold the script's lock: the script runs again at once while the proxy runs", async () => {
    // A daemon that inherited the lock's file descriptor would make every later run wait for it.
    const script = path.resolve(import.meta.dirname, "../../scripts/services.sh");
    const { stdout } = await promisify(execFile)("bash", [script, "up", "pgbouncer"], { timeout: 30_000 });
    expect(stdout).toMatch(/pgbouncer\s+127\.0\.0\.1:\d+\s+(answering|started)/);
  });
});
