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
 * Splits items into envelope bodies of at most `maxBytes` each, in order: `{"v":1,"<field>":[...]}`,
 * the shapes core/records.ts parses, with each item encoded for SQS.
 */
export const packEnvelopeBodies = (
  field: "messages" | "feedback",
  items: readonly unknown[],
  maxBytes = MAX_REQUEST_BYTES,
): string[] => {
  const head = `{"v":1,"${field}":[`;
  const tail = "]}";
  const bodies: string[] = [];
  let current: string[] = [];
  let size = Buffer.byteLength(head + tail);
  for (const item of items) {
    const encoded = sqsBody(item);
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

/** Messages in envelope bodies of at most `maxBytes` each. */
export const packEnvelopes = (messages: readonly Message[], maxBytes = MAX_REQUEST_BYTES): string[] =>
  packEnvelopeBodies("messages", messages, maxBytes);

/**
 * Sends envelope bodies to the analytics queue in as few SendMessageBatch calls as the limits
 * allow; an entry the queue refuses fails the whole send (`what` names the envelopes).
 */
export const sendEnvelopes = async (
  client: SQSClient,
  queueUrl: string,
  guard: TierGuard,
  bodies: readonly string[],
  what: string,
): Promise<void> => {
  const requests = batchRequests([...bodies], (body) => Buffer.byteLength(body));
  await Promise.all(
    requests.map((entries) =>
      guard.run(async () => {
        const result = await client.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: entries.map((body, i) => ({ Id: String(i), MessageBody: body })),
          }),
        );
        const failed = result.Failed ?? [];
        const [first] = failed;
        if (first !== undefined)
          throw new RejectedEntriesError(
            `analytics queue refused ${failed.length} ${what}(s): ${first.Code} ${first.Message ?? ""}`,
            failed.every((f) => f.SenderFault === true),
          );
      }),
    ),
  );
};

export class SqsAnalyticsPublisher implements AnalyticsPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  publish(messages: readonly Message[]): Promise<void> {
    return sendEnvelopes(this.client, this.queueUrl, this.guard, packEnvelopes(messages), "envelope");
  }
}
