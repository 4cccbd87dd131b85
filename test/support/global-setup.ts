/** Once per run: fresh test databases in PostgreSQL and ClickHouse, migrated. */
import { ensureClickHouse, ensurePostgres } from "../../scripts/local-stack/schema.ts";
import { dropLeftovers } from "./databases.ts";
import {
  TEST_CLICKHOUSE,
  TEST_DATABASE_TEMPLATE_URL,
  TEST_DATABASE_URL,
  TEST_STACK_DATABASE_PREFIX,
} from "./test-env.ts";

export default async function setup(): Promise<void> {
  await ensurePostgres(TEST_DATABASE_URL, { recreate: true });
  await dropLeftovers(TEST_DATABASE_URL, TEST_STACK_DATABASE_PREFIX);
  await ensurePostgres(TEST_DATABASE_TEMPLATE_URL, { recreate: true });
  await ensureClickHouse(TEST_CLICKHOUSE, { recreate: true });
}
