/** Metrics and Server-Timing for the accept path (HTTP and WebSocket alike). */

import type { AcceptResult } from "../core/acceptor.ts";
import { ServiceUnavailableError } from "../core/errors.ts";
import type { TierTiming } from "../core/timing.ts";
import { Metric, type MetricName } from "./metric-names.ts";
import { countMetric, logger, timeMetric } from "./telemetry.ts";

const TIER_METRICS: Record<string, MetricName> = {
  cache: Metric.AcceptCacheTime,
  sqs: Metric.AcceptQueueTime,
  db: Metric.AcceptDatabaseTime,
  ws: Metric.AcceptFanoutTime,
  total: Metric.AcceptLatency,
};

/** A tier can be timed more than once per request (e.g. two database calls): report the sum. */
const sumByTier = (timings: readonly TierTiming[]): Map<string, number> => {
  const totals = new Map<string, number>();
  for (const t of timings) totals.set(t.name, (totals.get(t.name) ?? 0) + t.ms);
  return totals;
};

export const serverTiming = (timings: readonly TierTiming[]): string =>
  [...sumByTier(timings)].map(([name, ms]) => `${name};dur=${ms.toFixed(2)}`).join(", ");

export const recordAccept = async (accept: () => Promise<AcceptResult>): Promise<AcceptResult> => {
  let result: AcceptResult;
  try {
    result = await accept();
  } catch (error) {
    if (error instanceof ServiceUnavailableError) countMetric(Metric.AcceptUnavailable);
    throw error;
  }
  for (const [name, ms] of sumByTier(result.timings)) {
    const metric = TIER_METRICS[name];
    if (metric !== undefined) timeMetric(metric, ms);
  }
  if (result.replayed) {
    countMetric(Metric.IdempotentReplays);
    return result;
  }
  countMetric(Metric.MessagesAccepted);
  if (result.cache === "skipped") countMetric(Metric.CacheSkipped);
  if (result.degraded) countMetric(Metric.QueueFallbacks);
  countMetric(Metric.WebSocketDelivered, result.delivery.sent);
  countMetric(Metric.WebSocketGone, result.delivery.gone);
  countMetric(Metric.WebSocketFailed, result.delivery.failed + result.delivery.skipped);
  logger.info("message accepted", {
    messageId: result.message.id,
    threadId: result.message.thread_id,
    seq: result.message.seq,
    correlationId: result.message.id,
    durability: result.durability,
    cache: result.cache,
  });
  return result;
};
