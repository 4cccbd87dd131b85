/**
 * The ClickHouse builders of feedback and analytics, beside analytics-container.ts (whose client
 * they share): the analytics consumer's service, which archives messages and feedback changes, the
 * admin analytics read, and the erasure worker. Only the functions that use them import this file.
 */
import { ClickHouseAnalyticsReader } from "../adapters/clickhouse/clickhouse-analytics-reader.ts";
import { ClickHouseArchiveEraser } from "../adapters/clickhouse/clickhouse-archive-eraser.ts";
import { isClickHouseOutage } from "../adapters/clickhouse/client.ts";
import { AnalyticsService } from "../core/analytics-service.ts";
import { ArchiveService } from "../core/archive-service.ts";
import { ErasureService, ErasureWorker } from "../core/erasure-service.ts";
import { archiveStore, clickHouseClient } from "./analytics-container.ts";
import { config } from "./config.ts";
import { clock, erasureDeps, erasureOptions, erasureQueue, guard, retryPolicy } from "./container.ts";
import { once } from "./once.ts";
import { diagnostics } from "./telemetry.ts";

/** Messages to `messages`, feedback changes to `feedback`. */
export const archiveService = once(async () => {
  const archive = await archiveStore();
  return new ArchiveService({ store: archive, feedback: archive, clock, diagnostics }, retryPolicy());
});

/** The erasure worker: the steps on Redis and ClickHouse after PostgreSQL's (docs/erasure.md). */
export const erasureWorker = once(async () => {
  const queue = erasureQueue();
  if (queue === undefined) throw new Error("ERASURE_QUEUE_URL is required by the erasure worker");
  const archive = new ClickHouseArchiveEraser(
    await clickHouseClient(),
    guard("clickhouse", isClickHouseOutage),
  );
  const service = new ErasureService({ ...(await erasureDeps()), archive }, erasureOptions());
  return new ErasureWorker(service, queue, retryPolicy(), config().ERASURE_BUDGET_MS, clock);
});

/**
 * HTTP functions run for 10 s: the analytics read gives up (503) before that, and ClickHouse stops
 * the query a second earlier still.
 */
const ANALYTICS_READ_TIMEOUT_MS = 9000;

export const analyticsService = once(async () => {
  const timeoutMs = Math.min(config().CLICKHOUSE_TIMEOUT_MS, ANALYTICS_READ_TIMEOUT_MS);
  const reader = new ClickHouseAnalyticsReader(
    await clickHouseClient(),
    guard("clickhouse", isClickHouseOutage, timeoutMs),
    Math.max(1, Math.floor(timeoutMs / 1000) - 1),
  );
  return new AnalyticsService({ reader, clock });
});
