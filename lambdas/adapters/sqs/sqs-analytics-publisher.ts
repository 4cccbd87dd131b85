/**
 * The analytics queue carries persisted messages in envelopes of many messages each, so that the
 * analytics consumer gets thousands of rows per ClickHouse insert from a few SQS records.
 */
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { Message } from "../../core/model.ts";
import type { AnalyticsPublisher } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { sqsBody } from "./body.ts";

/** Below SQS's 256 KiB limit per message and per batch request, with room for attributes. */
export const MAX_REQUEST_BYTES = 240 * 1024;
const MAX_ENTRIES = 10;

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

/** SQS refused entries: the sender's fault (bad content) is not an outage; anything else is. */
export class RejectedEntriesError extends Error {
  override readonly name = "RejectedEntriesError";
  constructor(
    message: string,
    readonly senderFault: boolean,
  ) {
    super(message);
  }
}

export class SqsAnalyticsPublisher implements AnalyticsPublisher {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  async publish(messages: readonly Message[]): Promise<void> {
    const bodies = packEnvelopes(messages);
    // Group envelopes into SendMessageBatch requests within the per-request size limit.
    const requests: string[][] = [];
    let group: string[] = [];
    let size = 0;
    for (const body of bodies) {
      const bytes = Buffer.byteLength(body);
      if (group.length > 0 && (group.length === MAX_ENTRIES || size + bytes > MAX_REQUEST_BYTES)) {
        requests.push(group);
        group = [];
        size = 0;
      }
      group.push(body);
      size += bytes;
    }
    if (group.length > 0) requests.push(group);

    await Promise.all(
      requests.map((entries) =>
        this.guard.run(async () => {
          const result = await this.client.send(
            new SendMessageBatchCommand({
              QueueUrl: this.queueUrl,
              Entries: entries.map((body, i) => ({ Id: String(i), MessageBody: body })),
            }),
          );
          if ((result.Failed ?? []).length > 0) {
            const first = result.Failed?.[0];
            throw new Error(
              `analytics queue refused ${result.Failed?.length} envelope(s): ${first?.Code} ${first?.Message}`,
            );
          }
        }),
      ),
    );
  }
}
