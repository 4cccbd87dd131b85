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

  async delay(records: readonly DelayedRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += 10) {
      const chunk = records.slice(i, i + 10);
      await this.client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: chunk.map((r, j) => ({
            Id: String(j),
            ReceiptHandle: r.receiptHandle,
            VisibilityTimeout: Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.round(r.delaySeconds))),
          })),
        }),
      );
    }
  }
}
