/**
 * The persist consumer behind its event source mapping: retries, partial batch failures, DLQ.
 * Records are put on the queue with the AWS SDK, as the accept path does.
 */
import { randomUUID } from "node:crypto";
import {
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../lambdas/core/ids.ts";
import type { Message } from "../../lambdas/core/model.ts";
import type { MessageEnvelope } from "../../lambdas/core/ports.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let sqs: SQSClient;

beforeAll(async () => {
  t = await startTestStack();
  sqs = new SQSClient({ endpoint: t.stack.sqsEndpoint, region: "us-east-1", useQueueUrlAsEndpoint: false });
});

afterAll(async () => {
  sqs.destroy();
  await t.stop();
});

let counter = 0;

const envelope = (threadId: string, content: string): MessageEnvelope => {
  const now = Date.now();
  const message: Message = {
    id: newId(),
    thread_id: threadId,
    seq: now * 1000 + ++counter,
    role: "user",
    user_id: "carol",
    content,
    metadata: {},
    client_message_id: null,
    created_at: Math.floor(now / 1000),
    created_at_ms: now,
  };
  return { v: 1, message, owner_id: "carol", accepted_at_ms: now };
};

const insertThread = async (id: string): Promise<void> => {
  await t.pg.query(
    "INSERT INTO threads (id, owner_id, created_at, created_at_ms) VALUES ($1, 'carol', now(), $2)",
    [id, Date.now()],
  );
};

describe("the persist consumer", () => {
  it("retries a record that failed, and stores it exactly once when it succeeds", async () => {
    // The thread does not exist yet: the insert fails on its foreign key, the record comes back.
    const threadId = randomUUID();
    const record = envelope(threadId, "arrives before its thread");
    const failuresBefore = t.stack.eventSources.persist.stats.failedRecords;
    await sqs.send(
      new SendMessageCommand({ QueueUrl: t.stack.queues.persist.url, MessageBody: JSON.stringify(record) }),
    );

    await waitFor(() => t.stack.eventSources.persist.stats.failedRecords > failuresBefore, {
      what: "first failure",
    });
    expect(await t.rowsInPostgres(record.message.id)).toBe(0);

    await insertThread(threadId);
    await waitFor(async () => (await t.rowsInPostgres(record.message.id)) === 1, { what: "stored on retry" });
    await waitFor(async () => (await t.rowsInClickHouse(record.message.id)) === 1, { what: "archived" });
    expect(await t.queueDepth(t.stack.queues.persist.dlqUrl)).toBe(0);
  });

  it("sends a poison record to the DLQ without holding back the rest of its batch", async () => {
    const threadId = randomUUID();
    await insertThread(threadId);
    const good = [envelope(threadId, "good 1"), envelope(threadId, "good 2"), envelope(threadId, "good 3")];
    const poison = "{ this is not an envelope";
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: t.stack.queues.persist.url,
        Entries: [
          { Id: "poison", MessageBody: poison },
          ...good.map((g, i) => ({ Id: `good${i}`, MessageBody: JSON.stringify(g) })),
        ],
      }),
    );

    // The good records are stored on their first delivery, long before the poison runs out of receives.
    await waitFor(
      async () => (await Promise.all(good.map((g) => t.rowsInPostgres(g.message.id)))).every((n) => n === 1),
      { what: "good records stored" },
    );
    expect(await t.queueDepth(t.stack.queues.persist.dlqUrl)).toBe(0);

    await waitFor(async () => (await t.queueDepth(t.stack.queues.persist.dlqUrl)) === 1, {
      what: "poison in the DLQ",
      timeoutMs: 20_000,
    });
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: t.stack.queues.persist.dlqUrl, MaxNumberOfMessages: 10 }),
    );
    expect(Messages?.map((m) => m.Body)).toEqual([poison]);
    for (const g of good) expect(await t.rowsInPostgres(g.message.id)).toBe(1);
  });

  it("stores a record delivered twice only once", async () => {
    const threadId = randomUUID();
    await insertThread(threadId);
    const record = JSON.stringify(envelope(threadId, "twice"));
    const id = (JSON.parse(record) as MessageEnvelope).message.id;
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: t.stack.queues.persist.url,
        Entries: [
          { Id: "a", MessageBody: record },
          { Id: "b", MessageBody: record },
        ],
      }),
    );
    await sqs.send(new SendMessageCommand({ QueueUrl: t.stack.queues.persist.url, MessageBody: record }));
    await waitFor(async () => (await t.rowsInClickHouse(id)) === 1, { what: "archived" });
    await waitFor(async () => (await t.queueDepth(t.stack.queues.persist.url)) === 0, {
      what: "queue drained",
    });
    expect(await t.rowsInPostgres(id)).toBe(1);
    expect(await t.rowsInClickHouse(id)).toBe(1);
  });
});
