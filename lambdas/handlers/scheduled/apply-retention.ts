/**
 * Scheduled (MESSAGE_RETENTION_DAYS set): starts an erasure of the threads whose newest message is
 * older than the retention period, measured from the schedule's event time (a test or an operator
 * invoking it chooses that time).
 */
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import { erasureService } from "../../runtime/container.ts";
import { logger, metrics } from "../../runtime/telemetry.ts";

/** An EventBridge scheduled event: `time` is when it was due (ISO 8601). */
interface ScheduledEvent {
  readonly time?: string;
}

export const handler = middy<ScheduledEvent, { erasure_id: string | null }>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics))
  .handler(async (event) => {
    const at = event?.time !== undefined ? Date.parse(event.time) : Number.NaN;
    const now = Number.isFinite(at) ? at : Date.now();
    const erasure = await (await erasureService()).applyRetention(now);
    if (erasure !== null)
      logger.info("retention erasure started", { erasureId: erasure.id, cutoff: erasure.subject });
    return { erasure_id: erasure?.id ?? null };
  });
