/**
 * Analytics consumer: SQS batch of persisted messages and feedback changes → one ClickHouse insert
 * per table (rows of erased threads dropped).
 */

import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { retryScheduler } from "../../runtime/container.ts";
import { archiveService } from "../../runtime/insights-container.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { quantileSample } from "../../runtime/quantiles.ts";
import { sqsBatchHandler } from "../../runtime/sqs-middleware.ts";
import { countMetric, metrics, timeMetric } from "../../runtime/telemetry.ts";

export const handler = sqsBatchHandler(
  archiveService,
  () => retryScheduler().analytics,
  (outcome) => {
    countMetric(Metric.RowsArchived, outcome.rows);
    countMetric(Metric.ArchiveFailures, outcome.failures.length);
    countMetric(Metric.ErasedRowsDropped, outcome.erased);
    if (outcome.inserts > 0)
      metrics.addMetric(Metric.RowsPerInsert, MetricUnit.Count, outcome.rows / outcome.inserts);
    for (const lag of quantileSample(outcome.lagsMs)) timeMetric(Metric.ArchiveLag, lag);
  },
);
