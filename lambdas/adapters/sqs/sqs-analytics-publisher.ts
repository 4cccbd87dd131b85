/**
 * The analytics queue carries persisted messages in envelopes of many messages each, so that the
 * analytics consumer gets thousands of rows per ClickHouse insert from a few SQS records.
 */
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { Message } from "../../core/model.ts";
import type { AnalyticsPublisher } from "../../core/ports.ts";
import { serializeAnalyticsEnvelope } from "../../core/records.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

/** Below SQS's 256 KiB limit per message and per batch request, with room for attributes. */
export const MAX_REQUEST_BYTES = 240 * 1024;
const MAX_ENTRIES = 10;

/** Splits messages into envelopes of at most `maxBytes` each. */
export const packEnvelopes = (messages: readonly Message[], maxBytes = MAX_REQUEST_BYTES): string[] => {
  const bodies: string[] = [];
  let current: Message[] = [];
  let size = 0;
  const overhead = Buffer.byteLength(serializeAnalyticsEnvelope([]));
  for (const message of messages) {
    const bytes = Buffer.byteLength(JSON.stringify(message)) + 1;
    if (current.length > 0 && overhead + size + bytes > maxBytes) {
      bodies.push(serializeAnalyticsEnvelope(current));
      current = [];
      size = 0;
    }
    current.push(message);
    size += bytes;
  }
  if (current.length > 0) bodies.push(serializeAnalyticsEnvelope(current));
  return bodies;
};

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
