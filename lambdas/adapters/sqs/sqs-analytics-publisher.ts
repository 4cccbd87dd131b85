/**
 * The analytics queue carries persisted messages in envelopes of many messages each, so that the
 * analytics consumer gets thousands of rows per ClickHouse insert from a few SQS records.
 */
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { Message } from "../../core/model.ts";
import type { AnalyticsPublisher } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { batchRequests, MAX_REQUEST_BYTES, RejectedEntriesError } from "./batch.ts";
import { sqsBody } from "./body.ts";

/**
 * Splits messages into envelope bodies of at most `maxBytes` each: `{"v":1,"messages":[...]}`, the
 * shape core/records.ts parses, with each message encoded for SQS.
 */
export const packEnvelopes = (messages: readonly Message[], maxBytes = MAX_REQUEST_BYTES): string[] => {
  const head = '{"v":1,"messages":[';
  const tail = "]}";
  const bodies: string[] = [];
  let current: string[] = [];
  let size = Buffer.byteLength(head + tail);
  for (const message of messages) {
    const encoded = sqsBody(message);
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

export class SqsAnalyticsPublisher implements AnalyticsPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  async publish(messages: readonly Message[]): Promise<void> {
    const requests = batchRequests(packEnvelopes(messages), (body) => Buffer.byteLength(body));
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
              `analytics queue refused ${failed.length} envelope(s): ${first.Code} ${first.Message ?? ""}`,
              failed.every((f) => f.SenderFault === true),
            );
        }),
      ),
    );
  }
}
