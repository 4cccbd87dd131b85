/**
 * The ClickHouse side of the composition root: only the analytics consumer and the health route
 * import it (and carry the ClickHouse client in their bundles).
 */
import type { ClickHouseClient } from "@clickhouse/client";
import { ClickHouseMessageArchive } from "../adapters/clickhouse/clickhouse-message-archive.ts";
import { createClickHouseClient, isClickHouseOutage } from "../adapters/clickhouse/client.ts";
import { readSecretJson } from "../adapters/secrets.ts";
import { checkHealth, HealthMonitor, type HealthReport } from "../core/health-service.ts";
import { config } from "./config.ts";
import { cache, clock, closers, guard, messageRepository, publisher } from "./container.ts";
import { once } from "./once.ts";

export const clickHouseClient = once(async (): Promise<ClickHouseClient> => {
  const cfg = config();
  const fromSecret =
    cfg.CLICKHOUSE_SECRET_ARN !== undefined ? await readSecretJson(cfg.CLICKHOUSE_SECRET_ARN) : {};
  const client = createClickHouseClient({
    url: String(fromSecret.url ?? cfg.CLICKHOUSE_URL),
    username: String(fromSecret.username ?? cfg.CLICKHOUSE_USER),
    password: String(fromSecret.password ?? cfg.CLICKHOUSE_PASSWORD),
    database: String(fromSecret.database ?? cfg.CLICKHOUSE_DATABASE),
    timeoutMs: cfg.CLICKHOUSE_TIMEOUT_MS,
  });
  closers.push(() => client.close());
  return client;
});

/** The archive (messages and feedback changes): the analytics consumer writes it, health pings it. */
export const archiveStore = once(
  async () => new ClickHouseMessageArchive(await clickHouseClient(), guard("clickhouse", isClickHouseOutage)),
);

const probeTiers = async (): Promise<HealthReport> => {
  const [messages, archive] = await Promise.all([messageRepository(), archiveStore()]);
  return checkHealth(
    [
      { name: "redis", durable: false, ping: async () => (await cache()).ping() },
      { name: "sqs", durable: true, ping: () => publisher().ping() },
      { name: "postgres", durable: true, ping: () => messages.ping() },
      { name: "clickhouse", durable: false, ping: () => archive.ping() },
    ],
    config().ACCEPT_MODE,
  );
};

const monitor = once(() => new HealthMonitor(probeTiers, clock, config().HEALTH_CACHE_SECONDS * 1000));

/** Each tier's status, probed at most once per HEALTH_CACHE_SECONDS. */
export const health = (): Promise<HealthReport> => monitor().report();
