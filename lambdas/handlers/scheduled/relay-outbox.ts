/**
 * Scheduled: forwards messages from the PostgreSQL outbox to the analytics queue and confirms
 * them to the hot tier (core/outbox-relay.ts); reports entries deferred and parked. Also hands
 * erasures whose worker record was lost to the worker again.
 */
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import { erasureService, outboxRelay } from "../../runtime/container.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { countMetric, logger, metrics } from "../../runtime/telemetry.ts";

const STALLED_AFTER_MS = 15 * 60_000;

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
    // An erasure not advanced for 15 minutes past its due time has lost its record.
    const resumed = await (await erasureService()).resumeStalled(Date.now(), STALLED_AFTER_MS);
    countMetric(Metric.ErasuresResumed, resumed);
    if (resumed > 0) logger.warn("erasures handed to the worker again", { resumed });
    return { ...outcome, erasuresResumed: resumed };
  });
