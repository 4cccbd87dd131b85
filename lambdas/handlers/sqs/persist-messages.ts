/** Persist consumer: SQS batch → one idempotent PostgreSQL insert → analytics queue. */
import { persistService, retryScheduler } from "../../runtime/container.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { quantileSample } from "../../runtime/quantiles.ts";
import { sqsBatchHandler } from "../../runtime/sqs-middleware.ts";
import { countMetric, timeMetric } from "../../runtime/telemetry.ts";

export const handler = sqsBatchHandler(
  persistService,
  () => retryScheduler().persist,
  (outcome) => {
    countMetric(Metric.MessagesPersisted, outcome.inserted);
    countMetric(Metric.DuplicatesIgnored, outcome.duplicates);
    countMetric(Metric.PersistFailures, outcome.failures.length);
    countMetric(Metric.OutboxHandoffs, outcome.handedToOutbox);
    countMetric(Metric.ErasedRowsDropped, outcome.erased);
    for (const lag of quantileSample(outcome.lagsMs)) timeMetric(Metric.PersistLag, lag);
  },
);
