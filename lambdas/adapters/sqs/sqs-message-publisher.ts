/** The persist queue: SendMessage is the accept path's durability point. */
import { GetQueueAttributesCommand, SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { MessagePublisher, PersistEnvelope } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { sqsBody } from "./body.ts";

export class SqsMessagePublisher implements MessagePublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  publish(envelope: PersistEnvelope): Promise<void> {
    return this.guard.run(async () => {
      await this.client.send(
        new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: sqsBody(envelope) }),
      );
    });
  }

  ping(): Promise<void> {
    return this.guard.run(async () => {
      await this.client.send(
        new GetQueueAttributesCommand({
          QueueUrl: this.queueUrl,
          AttributeNames: ["ApproximateNumberOfMessages"],
        }),
      );
    });
  }
}
