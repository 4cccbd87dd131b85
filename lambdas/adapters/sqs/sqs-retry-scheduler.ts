/**
 * Delays the redelivery of records that failed for a transient reason (ChangeMessageVisibility),
 * so a long outage spreads a record's receives over time instead of sending it to the DLQ early.
 */
import { ChangeMessageVisibilityBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";

export interface DelayedRecord {
  readonly receiptHandle: string;
  readonly delaySeconds: number;
}

const MAX_VISIBILITY_SECONDS = 43_200;

export class SqsRetryScheduler {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  /** One ChangeMessageVisibilityBatch per 10 records, all at once (a large failed batch is 50 calls). */
  async delay(records: readonly DelayedRecord[]): Promise<void> {
    const chunks = Array.from({ length: Math.ceil(records.length / 10) }, (_, i) =>
      records.slice(i * 10, i * 10 + 10),
    );
    await Promise.all(
      chunks.map((chunk) =>
        this.client.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.queueUrl,
            Entries: chunk.map((r, j) => ({
              Id: String(j),
              ReceiptHandle: r.receiptHandle,
              VisibilityTimeout: Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.round(r.delaySeconds))),
            })),
          }),
        ),
      ),
    );
  }
}
