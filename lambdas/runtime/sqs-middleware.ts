/**
 * The middleware stack of the SQS consumers. The service processes the batch and names the records
 * that failed; this answers with `batchItemFailures` (so only those are retried), and postpones
 * transiently failed records with ChangeMessageVisibility before answering.
 */
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import type { SqsRetryScheduler } from "../adapters/sqs/sqs-retry-scheduler.ts";
import { describeError } from "../core/errors.ts";
import type { QueueRecord, RecordFailure } from "../core/records.ts";
import { logger, metrics } from "./telemetry.ts";

export const toQueueRecords = (event: SQSEvent): QueueRecord[] =>
  event.Records.map((r) => ({
    id: r.messageId,
    body: r.body,
    receiveCount: Number(r.attributes?.ApproximateReceiveCount ?? 1),
  }));

export const sqsBatchHandler = <O extends { failures: readonly RecordFailure[] }>(
  processor: () => Promise<{ process(records: readonly QueueRecord[]): Promise<O> }>,
  scheduler: () => SqsRetryScheduler,
  report: (outcome: O) => void,
) =>
  middy<SQSEvent, SQSBatchResponse>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .handler(async (event) => {
      const records = toQueueRecords(event);
      const outcome = await (await processor()).process(records);
      report(outcome);
      const receipts = new Map(event.Records.map((r) => [r.messageId, r.receiptHandle]));
      const delayed = outcome.failures.flatMap((f) => {
        const receiptHandle = receipts.get(f.id);
        return f.retryDelaySeconds === null || receiptHandle === undefined
          ? []
          : [{ receiptHandle, delaySeconds: f.retryDelaySeconds }];
      });
      if (delayed.length > 0) {
        // Best effort: without it the records simply return after the queue's visibility timeout.
        await scheduler()
          .delay(delayed)
          .then(() =>
            logger.debug("postponed failed records", { delays: delayed.map((d) => d.delaySeconds) }),
          )
          .catch((error: unknown) =>
            logger.warn("could not postpone failed records", { error: describeError(error) }),
          );
      }
      if (outcome.failures.length > 0) {
        logger.warn("records failed", {
          failed: outcome.failures.length,
          of: records.length,
          reasons: [...new Set(outcome.failures.map((f) => f.reason))].slice(0, 5),
        });
      }
      return { batchItemFailures: outcome.failures.map((f) => ({ itemIdentifier: f.id })) };
    });
