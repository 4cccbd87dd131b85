/**
 * Emulates a Lambda SQS event source mapping: pollers long-poll the queue, gather records until
 * the batch size or the batching window is reached, invoke the function, then delete what
 * succeeded. `batchItemFailures` leave only the named records to come back after the visibility
 * timeout (SQS moves a record to its DLQ after maxReceiveCount receives); a function that throws
 * or times out, or names a record that is not in the batch, fails the whole batch, as in AWS.
 */
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import type { LocalFunction } from "./lambda-runtime.ts";

export interface EventSourceOptions {
  readonly queueUrl: string;
  readonly queueArn: string;
  readonly fn: LocalFunction<SQSEvent, SQSBatchResponse | undefined>;
  readonly batchSize: number;
  /** Lambda takes whole seconds; locally milliseconds are allowed. */
  readonly maxBatchingWindowMs: number;
  /** Parallel pollers (Lambda scales these with the backlog; here the count is fixed). */
  readonly concurrency: number;
  readonly onError?: (error: unknown) => void;
}

export interface EventSourceStats {
  invocations: number;
  records: number;
  failedRecords: number;
  failedInvocations: number;
}

const toRecord = (m: Message, arn: string): SQSRecord => ({
  messageId: m.MessageId as string,
  receiptHandle: m.ReceiptHandle as string,
  body: m.Body ?? "",
  attributes: {
    ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? "1",
    SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
    SenderId: m.Attributes?.SenderId ?? "000000000000",
    ApproximateFirstReceiveTimestamp: m.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
  },
  messageAttributes: {},
  md5OfBody: m.MD5OfBody ?? "",
  eventSource: "aws:sqs",
  eventSourceARN: arn,
  awsRegion: arn.split(":")[3] ?? "us-east-1",
});

export class SqsEventSource {
  readonly stats: EventSourceStats = { invocations: 0, records: 0, failedRecords: 0, failedInvocations: 0 };
  private running = false;
  private abort = new AbortController();
  private loops: Promise<void>[] = [];

  constructor(
    private readonly client: SQSClient,
    private readonly options: EventSourceOptions,
  ) {}

  /** Starts polling (again, after a stop). */
  start(): void {
    this.running = true;
    this.abort = new AbortController();
    this.loops = Array.from({ length: this.options.concurrency }, () => this.poll());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await Promise.allSettled(this.loops);
  }

  private async receive(max: number, waitSeconds: number): Promise<Message[]> {
    const { Messages } = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: this.options.queueUrl,
        MaxNumberOfMessages: Math.min(10, max),
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ["All"],
      }),
      { abortSignal: this.abort.signal },
    );
    return Messages ?? [];
  }

  private async gather(): Promise<Message[]> {
    const { batchSize, maxBatchingWindowMs } = this.options;
    const batch = await this.receive(batchSize, 1);
    if (batch.length === 0) return batch;
    const deadline = Date.now() + maxBatchingWindowMs;
    let waited = false;
    while (this.running && batch.length < batchSize && Date.now() < deadline) {
      const more = await this.receive(batchSize - batch.length, 0);
      batch.push(...more);
      if (more.length === 0) {
        // The queue is empty for now: wait out the window once, then take what arrived meanwhile.
        if (waited) break;
        waited = true;
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now())));
      }
    }
    return batch;
  }

  private async poll(): Promise<void> {
    while (this.running) {
      try {
        const messages = await this.gather();
        if (messages.length > 0) await this.dispatch(messages);
      } catch (error) {
        if (!this.running) return;
        this.options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async dispatch(messages: Message[]): Promise<void> {
    const records = messages.map((m) => toRecord(m, this.options.queueArn));
    this.stats.invocations++;
    this.stats.records += records.length;
    let failed: Set<string>;
    try {
      const response = await this.options.fn.invoke({ Records: records });
      const ids = new Set(records.map((r) => r.messageId));
      const named = (response?.batchItemFailures ?? []).map((f) => f.itemIdentifier);
      // An identifier that is empty or not in the batch makes Lambda treat the whole batch as failed.
      failed = named.every((id) => typeof id === "string" && ids.has(id)) ? new Set(named) : ids;
    } catch (error) {
      this.stats.failedInvocations++;
      this.options.onError?.(error);
      failed = new Set(records.map((r) => r.messageId));
    }
    this.stats.failedRecords += failed.size;
    const done = records.filter((r) => !failed.has(r.messageId));
    for (let i = 0; i < done.length; i += 10) {
      const chunk = done.slice(i, i + 10);
      await this.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: chunk.map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle })),
        }),
      );
    }
  }
}
