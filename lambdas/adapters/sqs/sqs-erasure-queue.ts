/** Erasure records on the erasure queue, whose consumer is the erasure worker. */
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { erasureRecordBody } from "../../core/erasure-service.ts";
import type { ErasureQueue } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

/** SQS delays a record at most this long. */
const MAX_DELAY_SECONDS = 900;

export class SqsErasureQueue implements ErasureQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  schedule(erasureId: string, delaySeconds: number): Promise<void> {
    return this.guard.run(async () => {
      await this.client.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: erasureRecordBody(erasureId),
          DelaySeconds: Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(delaySeconds))),
        }),
      );
    });
  }
}
