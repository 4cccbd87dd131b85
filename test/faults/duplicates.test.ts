/**
 * Duplicates from both ends: SQS delivering the same record more than once, and a client retrying
 * after its answer was lost in the network (also after Redis lost the idempotency key). One
 * message everywhere.
 */
import { randomUUID } from "node:crypto";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messageIdFor } from "../../lambdas/core/ids.ts";
import type { Attempt } from "../support/load.ts";
import { freePort, PrivateRedis } from "../support/redis-server.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let redis: PrivateRedis;
let t: TestStack;
let proxy: TcpProxy;

beforeAll(async () => {
  redis = await PrivateRedis.start();
  t = await startTestStack({ env: { REDIS_URL: redis.url, RATE_LIMIT_PER_SECOND: "0" } });
  proxy = await TcpProxy.start(await freePort(), Number(new URL(t.stack.httpUrl).port));
});

afterAll(async () => {
  await proxy.cut();
  await t.stop();
  await redis.stop();
});

const post = (base: string, token: string, threadId: string, clientMessageId: string) =>
  fetch(`${base}/api/threads/${threadId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ message: `retry me ${clientMessageId}`, client_message_id: clientMessageId }),
  });

describe("a client retrying after a lost response", () => {
  it("gets the original message back, and there is one message everywhere", async () => {
    const user = `retrier-${randomUUID().slice(0, 8)}`;
    const token = await t.token(user);
    const thread = await t.createThread(token);
    const attempts: Attempt[] = [];

    for (const flushBeforeRetry of [false, true]) {
      const clientMessageId = randomUUID();
      const messageId = messageIdFor(thread.id, user, clientMessageId);
      proxy.dropResponses = true;
      await expect(post(proxy.url, token, thread.id, clientMessageId)).rejects.toThrow();
      proxy.dropResponses = false;
      // The server did accept it: the answer is what got lost.
      await waitFor(async () => (await t.rowsInPostgres(messageId)) === 1, {
        what: "the first attempt stored",
      });
      if (flushBeforeRetry) await t.redis.flushall();

      const startedAt = Date.now();
      const retry = await post(t.stack.httpUrl, token, thread.id, clientMessageId);
      const body = (await retry.json()) as Record<string, unknown>;
      expect(retry.status).toBe(201);
      // The original, also after Redis lost the key: same id, seq and content, replayed.
      expect(body.id).toBe(messageId);
      expect(body.replayed).toBe(true);
      const { rows } = await t.pg.query<{ seq: string; content: string }>(
        "SELECT seq, content FROM messages WHERE id = $1",
        [messageId],
      );
      expect(Number(rows[0]?.seq)).toBe(body.seq);
      expect(rows[0]?.content).toBe(body.content);
      attempts.push({
        threadId: thread.id,
        userId: user,
        clientMessageId,
        messageId,
        startedAt,
        status: 201,
        body,
      });
    }
    for (const a of attempts) {
      await waitFor(async () => (await t.rowsInClickHouse(a.messageId)) === 1, { what: "archived" });
      expect(await t.rowsInPostgres(a.messageId)).toBe(1);
    }
    const { rows } = await t.pg.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
      [thread.id],
    );
    expect(rows[0]?.n).toBe(2);
  });
});

describe("SQS delivering a record several times", () => {
  it("stores and archives it once", async () => {
    const user = `dup-${randomUUID().slice(0, 8)}`;
    const token = await t.token(user);
    const thread = await t.createThread(token);
    const res = await post(t.stack.httpUrl, token, thread.id, randomUUID());
    const message = (await res.json()) as { id: string; seq: number };
    await waitFor(async () => (await t.rowsInClickHouse(message.id)) === 1, { what: "archived once" });

    // The same envelope again, three times, as SQS's at-least-once delivery may hand it out.
    const stored = await t.request<Record<string, unknown>>("GET", `/api/messages/${message.id}`, { token });
    const envelope = JSON.stringify({
      v: 1,
      message: stored.body,
      owner_id: user,
      accepted_at_ms: Date.now(),
    });
    const sqs = new SQSClient({
      endpoint: t.stack.sqsEndpoint,
      region: "us-east-1",
      useQueueUrlAsEndpoint: false,
    });
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: t.stack.queues.persist.url,
        Entries: ["a", "b", "c"].map((Id) => ({ Id, MessageBody: envelope })),
      }),
    );
    sqs.destroy();
    const before = t.stack.eventSources.persist.stats.records;
    const archivedBefore = t.stack.eventSources.analytics.stats.records;
    await waitFor(() => t.stack.eventSources.persist.stats.records - before >= 3, {
      what: "duplicates consumed",
    });
    // Each was stored (as a no-op) and forwarded again: wait until ClickHouse got those too.
    await waitFor(() => t.stack.eventSources.analytics.stats.records > archivedBefore, {
      what: "forwards archived",
    });
    expect(await t.rowsInPostgres(message.id)).toBe(1);
    expect(await t.rowsInClickHouse(message.id)).toBe(1);
  });
});
