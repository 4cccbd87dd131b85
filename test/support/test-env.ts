/** Where the integration tests find the data servers (started by scripts/bootstrap.sh). */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/chat_test";
/**
 * Migrated once per run (global setup); every test stack gets its own database copied from it,
 * so that stacks do not share an outbox (a relay of one stack must not forward another's rows to
 * its own queues, which stop with it).
 */
export const TEST_DATABASE_TEMPLATE_URL = TEST_DATABASE_URL.replace(/\/[^/]*$/, "/chat_test_template");
export const TEST_STACK_DATABASE_PREFIX = "chat_t_";
/**
 * Where the handlers (and the repository contract) reach PostgreSQL: directly, or — in the
 * integration-cluster project — through PgBouncer in transaction pooling mode, the stand-in for
 * RDS Proxy (scripts/services/pgbouncer.sh). Administration (creating databases) stays direct.
 */
export const TEST_PGBOUNCER_PORT = process.env.TEST_PGBOUNCER_PORT;
export const viaPooler = (url: string): string => {
  if (TEST_PGBOUNCER_PORT === undefined) return url;
  const pooled = new URL(url);
  pooled.port = TEST_PGBOUNCER_PORT;
  return pooled.toString();
};
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_REDIS_CLUSTER = process.env.TEST_REDIS_CLUSTER ?? "false";
export const TEST_CLICKHOUSE = {
  url: process.env.TEST_CLICKHOUSE_URL ?? "http://127.0.0.1:8123",
  username: "default",
  password: "",
  database: process.env.TEST_CLICKHOUSE_DATABASE ?? "chat_test",
};
export const TEST_JWT_SECRET = "integration-test-secret-with-at-least-32-chars";
