/**
 * Scheduled: forwards messages from the PostgreSQL outbox to the analytics queue and confirms
 * them to the hot tier (core/outbox-relay.ts); reports entries deferred and parked.
 */
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import { outboxRelay } from "../../runtime/container.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { countMetric, logger, metrics } from "../../runtime/telemetry.ts";

export const handler = middy()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics))
  .handler(async () => {
    const outcome = await (await outboxRelay()).drain(20);
    countMetric(Metric.OutboxForwarded, outcome.forwarded);
    countMetric(Metric.OutboxDeferred, outcome.deferred);
    countMetric(Metric.OutboxParked, outcome.parked);
    if (outcome.forwarded > 0 || outcome.deferred > 0) logger.info("outbox relayed", { ...outcome });
    if (outcome.parked > 0) logger.warn("outbox entries parked", { parked: outcome.parked });
    return outcome;
  });
