/**
 * Feedback changes to the analytics queue, in the analytics envelope (`{"v":1,"feedback":[...]}`,
 * core/records.ts), as few SQS messages as their size allows.
 */
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { FeedbackEvent, FeedbackPublisher } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { batchRequests, MAX_REQUEST_BYTES, RejectedEntriesError } from "./batch.ts";
import { sqsBody } from "./body.ts";

/**
 * Envelope bodies of at most `maxBytes` each, changes in order: `{"v":1,"feedback":[...]}`, the
 * shape core/records.ts parses (serializeFeedbackEnvelope), each change encoded for SQS.
 */
export const packFeedbackEnvelopes = (
  events: readonly FeedbackEvent[],
  maxBytes = MAX_REQUEST_BYTES,
): string[] => {
  const head = '{"v":1,"feedback":[';
  const tail = "]}";
  const bodies: string[] = [];
  let current: string[] = [];
  let size = Buffer.byteLength(head + tail);
  for (const event of events) {
    const encoded = sqsBody(event);
    const bytes = Buffer.byteLength(encoded) + 1;
    if (current.length > 0 && size + bytes > maxBytes) {
      bodies.push(head + current.join(",") + tail);
      current = [];
      size = Buffer.byteLength(head + tail);
    }
    current.push(encoded);
    size += bytes;
  }
  if (current.length > 0) bodies.push(head + current.join(",") + tail);
  return bodies;
};

export class SqsFeedbackPublisher implements FeedbackPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  async publish(events: readonly FeedbackEvent[]): Promise<void> {
    if (events.length === 0) return;
    const requests = batchRequests(packFeedbackEnvelopes(events), (body) => Buffer.byteLength(body));
    await Promise.all(
      requests.map((entries) =>
        this.guard.run(async () => {
          const result = await this.client.send(
            new SendMessageBatchCommand({
              QueueUrl: this.queueUrl,
              Entries: entries.map((body, i) => ({ Id: String(i), MessageBody: body })),
            }),
          );
          const failed = result.Failed ?? [];
          const [first] = failed;
          if (first !== undefined)
            throw new RejectedEntriesError(
              `analytics queue refused ${failed.length} feedback envelope(s): ${first.Code} ${first.Message ?? ""}`,
              failed.every((f) => f.SenderFault === true),
            );
        }),
      ),
    );
  }
}
