/**
 * Erasure worker: each record names an erasure; its due steps are taken (Redis, ClickHouse, the
 * second pass after the settle time) and, while it is not complete, the record is sent again,
 * delayed until the next step is due (docs/erasure.md).
 */
import { retryScheduler } from "../../runtime/container.ts";
import { erasureWorker } from "../../runtime/insights-container.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { sqsBatchHandler } from "../../runtime/sqs-middleware.ts";
import { countMetric } from "../../runtime/telemetry.ts";

export const handler = sqsBatchHandler(
  erasureWorker,
  () => retryScheduler().erasure,
  (outcome) => {
    countMetric(Metric.ErasuresSettled, outcome.completed);
  },
);
