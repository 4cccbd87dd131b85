/**
 * Scheduled (every minute): forwards messages committed synchronously (SQS-down fallback, rollback
 * mode) from the PostgreSQL outbox to the analytics queue.
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
    const forwarded = await (await outboxRelay()).drain(20);
    countMetric(Metric.OutboxForwarded, forwarded);
    if (forwarded > 0) logger.info("outbox forwarded", { forwarded });
    return { forwarded };
  });
