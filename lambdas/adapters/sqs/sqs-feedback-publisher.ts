/**
 * Feedback changes to the analytics queue, in the analytics envelope (`{"v":1,"feedback":[...]}`,
 * core/records.ts), as few SQS messages as their size allows.
 */
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { FeedbackEvent, FeedbackPublisher } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { MAX_REQUEST_BYTES } from "./batch.ts";
import { packEnvelopeBodies, sendEnvelopes } from "./sqs-analytics-publisher.ts";

/** Feedback changes in envelope bodies of at most `maxBytes` each, in order. */
export const packFeedbackEnvelopes = (
  events: readonly FeedbackEvent[],
  maxBytes = MAX_REQUEST_BYTES,
): string[] => packEnvelopeBodies("feedback", events, maxBytes);

export class SqsFeedbackPublisher implements FeedbackPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  async publish(events: readonly FeedbackEvent[]): Promise<void> {
    if (events.length === 0) return;
    await sendEnvelopes(
      this.client,
      this.queueUrl,
      this.guard,
      packFeedbackEnvelopes(events),
      "feedback envelope",
    );
  }
}
