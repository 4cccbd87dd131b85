/** Where the integration tests find the data servers (started by scripts/bootstrap.sh). */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/chat_test";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const TEST_REDIS_CLUSTER = process.env.TEST_REDIS_CLUSTER ?? "false";
export const TEST_CLICKHOUSE = {
  url: process.env.TEST_CLICKHOUSE_URL ?? "http://127.0.0.1:8123",
  username: "default",
  password: "",
  database: process.env.TEST_CLICKHOUSE_DATABASE ?? "chat_test",
};
export const TEST_JWT_SECRET = "integration-test-secret-with-at-least-32-chars";
