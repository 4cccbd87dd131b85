/**
 * Deleting a thread, erasing a user, and retention, against the local stack: every tier is cleared
 * (PostgreSQL, Redis, ClickHouse as FINAL sees it and after merges), every route answers 404 from
 * the delete on, and no message that was in flight — in the persist queue, in a consumer's batch,
 * in the analytics queue — brings anything back after the queues drain.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSUMER_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { LocalFunction } from "../../scripts/local-stack/lambda-runtime.ts";
import {
  clickhouseRows,
  erasureComplete,
  erasureStatus,
  leftovers,
  mergeClickHouse,
  NOTHING_LEFT,
} from "../support/erasure.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let alice: string;
let bob: string;
let agent: string;
let admin: string;

const RETENTION_DAYS = 30;
const DAY_MS = 86_400_000;

beforeAll(async () => {
  t = await startTestStack({
    env: { RATE_LIMIT_PER_SECOND: "0", MESSAGE_RETENTION_DAYS: String(RETENTION_DAYS) },
    retentionIntervalMs: 0,
    // A record the test puts back is received again: room for that before the dead-letter queue.
    consumers: { persist: { maxReceiveCount: 10 } },
  });
  alice = await t.token("alice");
  bob = await t.token("bob");
  agent = await t.token("helper-agent", ["service"]);
  admin = await t.token("ops", ["admin"]);
});

afterAll(async () => {
  await t.stop();
});

interface Wire {
  id: string;
  seq: number;
  created_at_ms: number;
}

interface Deleted {
  thread_id: string;
  erasure_id: string;
  status_url: string;
  error?: { code: string };
}

const post = async (threadId: string, token: string, body: Record<string, unknown>) => {
  const res = await t.request<Wire>("POST", `/api/threads/${threadId}/messages`, { token, body });
  expect(res.status).toBe(201);
  return res.body;
};

const remove = (threadId: string, token = alice) =>
  t.request<Deleted>("DELETE", `/api/threads/${threadId}`, { token });

const inPostgres = (ids: readonly string[]) =>
  waitFor(async () => (await Promise.all(ids.map((id) => t.rowsInPostgres(id)))).every((n) => n === 1), {
    what: "messages in PostgreSQL",
  });

const inClickHouse = (ids: readonly string[]) =>
  waitFor(async () => (await Promise.all(ids.map((id) => t.rowsInClickHouse(id)))).every((n) => n === 1), {
    what: "messages in ClickHouse",
  });

/** A thread with a question, a reply with feedback, and a message sent with a client id. */
const busyThread = async () => {
  const thread = await t.createThread(alice, { title: "to be deleted" });
  const question = await post(thread.id, alice, { message: "Where to go?", client_message_id: "q-1" });
  const reply = await post(thread.id, agent, { message: "Lisbon.", role: "assistant" });
  const more = await post(thread.id, alice, { message: "Thanks!" });
  const ids = [question.id, reply.id, more.id];
  await inPostgres(ids);
  const rated = await t.request("PUT", `/api/messages/${reply.id}/feedback`, {
    token: alice,
    body: { rating: "up", reason: "helpful" },
  });
  expect(rated.status).toBe(200);
  await inClickHouse(ids);
  await waitFor(async () => (await clickhouseRows(t, [thread.id])).feedback === 1, {
    what: "feedback in ClickHouse",
  });
  return { thread, ids, reply };
};

describe("DELETE /api/threads/{id}", () => {
  it("erases the thread from every tier, tells its subscribers, and answers 404 everywhere from then on", async () => {
    const { thread, ids, reply } = await busyThread();
    // The hot tier holds the thread and its messages (history read through it).
    expect((await t.request("GET", `/api/threads/${thread.id}/messages`, { token: alice })).status).toBe(200);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });

    const deleted = await remove(thread.id);
    expect(deleted.status).toBe(202);
    expect(deleted.body).toEqual({
      thread_id: thread.id,
      erasure_id: expect.any(String),
      status_url: `/api/admin/erasures/${deleted.body.erasure_id}`,
    });
    expect(deleted.headers.get("location")).toBe(deleted.body.status_url);
    expect(await socket.next((f) => f.type === "thread.deleted")).toMatchObject({ thread_id: thread.id });

    // Every route, for the thread and its messages.
    const routes: [string, string, unknown?][] = [
      ["GET", `/api/threads/${thread.id}`],
      ["GET", `/api/threads/${thread.id}/messages`],
      ["POST", `/api/threads/${thread.id}/messages`, { message: "still there?" }],
      ["PATCH", `/api/threads/${thread.id}`, { title: "back" }],
      ["GET", `/api/threads/${thread.id}/export`],
      ["GET", `/api/threads/${thread.id}/usage`],
      ["DELETE", `/api/threads/${thread.id}`],
      ["GET", `/api/messages/${reply.id}`],
      ["PUT", `/api/messages/${reply.id}/feedback`, { rating: "down" }],
    ];
    for (const [method, path, body] of routes) {
      const res = await t.request<{ error: { code: string } }>(method, path, { token: alice, body });
      expect([method, path, res.status]).toEqual([method, path, 404]);
    }
    const resubscribe = await socket.request({ action: "subscribe", threadId: thread.id });
    expect(resubscribe).toMatchObject({ type: "error", code: "thread_not_found" });
    const listed = await t.request<{ threads: { id: string }[] }>("GET", "/api/threads?archived=any", {
      token: alice,
    });
    expect(listed.body.threads.map((x) => x.id)).not.toContain(thread.id);

    const report = await erasureComplete(t, deleted.body.erasure_id, admin);
    expect(report).toMatchObject({
      kind: "thread",
      subject: thread.id,
      requested_by: "alice",
      status: "complete",
      stage: "done",
      counts: { threads: 1, messages: 3, feedback: 1 },
      tiers: {
        postgres: { state: "done" },
        redis: { state: "done" },
        clickhouse: { state: "done", remaining_rows: 0 },
      },
    });
    expect(report.counts.redis_keys).toBeGreaterThan(0);
    // The owner who asked may follow it too; nobody else.
    expect((await erasureStatus(t, deleted.body.erasure_id, alice)).status).toBe("complete");
    expect(
      (await t.request("GET", `/api/admin/erasures/${deleted.body.erasure_id}`, { token: bob })).status,
    ).toBe(404);

    expect(await leftovers(t, [thread.id], ids)).toEqual(NOTHING_LEFT);
    await mergeClickHouse(t);
    expect(await clickhouseRows(t, [thread.id], false)).toEqual({ messages: 0, feedback: 0 });
  });

  it("is the owner's alone: another user gets 404, a service principal 403, and the thread stays", async () => {
    const thread = await t.createThread(alice);
    const m = await post(thread.id, alice, { message: "mine" });
    for (const [method, path, body] of [
      ["DELETE", `/api/threads/${thread.id}`],
      ["PATCH", `/api/threads/${thread.id}`, { title: "bob's now" }],
      ["GET", `/api/threads/${thread.id}/export`],
    ] as [string, string, unknown?][]) {
      const res = await t.request<{ error: { code: string } }>(method, path, { token: bob, body });
      expect([method, res.status, res.body.error?.code]).toEqual([method, 404, "thread_not_found"]);
    }
    const byAgent = await remove(thread.id, agent);
    expect(byAgent.status).toBe(403);
    expect(byAgent.body.error?.code).toBe("role_not_allowed");
    expect((await t.request("GET", `/api/messages/${m.id}`, { token: alice })).status).toBe(200);
    expect((await t.request("DELETE", "/api/threads/not-a-uuid", { token: alice })).status).toBe(400);
    expect((await t.request("GET", "/api/admin/erasures/not-a-uuid", { token: admin })).status).toBe(400);
  });

  it("drops what was in flight: messages in the persist queue, in a consumer's batch, and in the analytics queue", async () => {
    const thread = await t.createThread(alice);
    const early = await post(thread.id, alice, { message: "persisted, archived" });
    await inClickHouse([early.id]);

    // The analytics consumer stops: what the persist consumer forwards waits in the analytics queue.
    await t.stack.eventSources.analytics.stop();
    const queuedForAnalytics = await post(thread.id, alice, { message: "persisted, not archived" });
    await inPostgres([queuedForAnalytics.id]);

    // The persist consumer stops: accepted messages wait in the persist queue.
    await t.stack.eventSources.persist.stop();
    const inBatch = await post(thread.id, alice, { message: "in a consumer's batch" });
    const inQueue = await post(thread.id, alice, { message: "in the persist queue" });
    // A consumer takes the first into its batch (received, not yet processed); the other waits.
    const sqs = new SQSClient({
      endpoint: t.stack.sqsEndpoint,
      region: "us-east-1",
      useQueueUrlAsEndpoint: false,
    });
    const queueUrl = t.stack.queues.persist.url;
    // Both records are there before one is taken (each receive counts towards the dead-letter queue).
    await waitFor(async () => (await t.queueDepth(queueUrl)) >= 2, { what: "both records queued" });
    const others: Message[] = [];
    const taken = await waitFor(
      async () => {
        const r = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }),
        );
        for (const m of r.Messages ?? []) if (!m.Body?.includes(inBatch.id)) others.push(m);
        return r.Messages?.find((m) => m.Body?.includes(inBatch.id));
      },
      { what: "the record of the message in a consumer's batch" },
    );
    for (const m of others) {
      await sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: m.ReceiptHandle,
          VisibilityTimeout: 0,
        }),
      );
    }

    const deleted = await remove(thread.id);
    expect(deleted.status).toBe(202);

    // The batch taken before the delete is processed after it, by the persist consumer's function.
    const consumer = new LocalFunction<SQSEvent, SQSBatchResponse>(
      CONSUMER_FUNCTIONS.persist.id,
      CONSUMER_FUNCTIONS.persist.entry,
      10_000,
    );
    const now = String(Date.now());
    const answer = await consumer.invoke({
      Records: [
        {
          messageId: taken.MessageId as string,
          receiptHandle: taken.ReceiptHandle as string,
          body: taken.Body as string,
          attributes: {
            ApproximateReceiveCount: "1",
            SentTimestamp: now,
            SenderId: "local",
            ApproximateFirstReceiveTimestamp: now,
          },
          messageAttributes: {},
          md5OfBody: "",
          eventSource: "aws:sqs",
          eventSourceARN: t.stack.queues.persist.arn,
          awsRegion: "us-east-1",
        },
      ],
    });
    expect(answer.batchItemFailures).toEqual([]);
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: taken.ReceiptHandle }));

    // The consumers start again; the queues drain.
    t.stack.eventSources.persist.start();
    t.stack.eventSources.analytics.start();
    await waitFor(async () => (await t.queueDepth(t.stack.queues.persist.url)) === 0, {
      what: "persist queue drained",
    });
    const report = await erasureComplete(t, deleted.body.erasure_id, admin);
    await waitFor(async () => (await t.queueDepth(t.stack.queues.analytics.url)) === 0, {
      what: "analytics queue drained",
    });
    expect(report.counts).toMatchObject({ threads: 1 });
    sqs.destroy();

    const ids = [early.id, queuedForAnalytics.id, inBatch.id, inQueue.id];
    expect(await leftovers(t, [thread.id], ids)).toEqual(NOTHING_LEFT);
    await mergeClickHouse(t);
    expect(await clickhouseRows(t, [thread.id], false)).toEqual({ messages: 0, feedback: 0 });
    expect(await t.queueDepth(t.stack.queues.persist.dlqUrl)).toBe(0);
    expect(await t.queueDepth(t.stack.queues.analytics.dlqUrl)).toBe(0);
  });
});

describe("DELETE /api/admin/users/{userId}", () => {
  it("erases every thread of the user in every tier, reports progress, and leaves other users alone", async () => {
    const carol = await t.token("carol");
    const threads = [];
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const thread = await t.createThread(carol, { title: `carol ${i}` });
      threads.push(thread.id);
      for (let j = 0; j < 3; j++) ids.push((await post(thread.id, carol, { message: `m${i}.${j}` })).id);
    }
    const bobs = await t.createThread(bob);
    const kept = await post(bobs.id, bob, { message: "bob stays" });
    await inClickHouse([...ids, kept.id]);

    expect((await t.request("DELETE", "/api/admin/users/carol", { token: alice })).status).toBe(403);
    const started = await t.request<{ erasure_id: string; status_url: string; kind: string; status: string }>(
      "DELETE",
      "/api/admin/users/carol",
      { token: admin },
    );
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({
      kind: "user",
      subject: "carol",
      requested_by: "ops",
      status: "in_progress",
    });

    const report = await erasureComplete(t, started.body.erasure_id, admin);
    expect(report).toMatchObject({
      counts: { threads: 7, messages: 21, feedback: 0 },
      tiers: { postgres: { state: "done" }, redis: { state: "done" }, clickhouse: { state: "done" } },
    });
    expect(await leftovers(t, threads, ids)).toEqual(NOTHING_LEFT);
    const listed = await t.request<{ threads: unknown[] }>("GET", "/api/threads", { token: carol });
    expect(listed.body.threads).toEqual([]);
    // The erasure keeps no content: its record names the user, counts, times.
    const { rows } = await t.pg.query("SELECT * FROM erasures WHERE id = $1", [started.body.erasure_id]);
    expect(JSON.stringify(rows[0])).not.toMatch(/m\d\.\d/);

    expect(await t.rowsInPostgres(kept.id)).toBe(1);
    expect(await t.rowsInClickHouse(kept.id)).toBe(1);
    expect((await t.request("GET", `/api/threads/${bobs.id}/messages`, { token: bob })).status).toBe(200);
  });
});

describe("retention (MESSAGE_RETENTION_DAYS)", () => {
  it("erases the threads whose newest message is older than the period, by the schedule's clock", async () => {
    const dave = await t.token("dave");
    const old = await t.createThread(dave, { title: "old" });
    const oldMessage = await post(old.id, dave, { message: "long ago" });
    const recent = await t.createThread(dave, { title: "recent" });
    let recentMessage = await post(recent.id, dave, { message: "just now" });
    while (recentMessage.created_at_ms <= oldMessage.created_at_ms) {
      recentMessage = await post(recent.id, dave, { message: "just now, again" });
    }
    await inClickHouse([oldMessage.id, recentMessage.id]);

    // The schedule fires when the old thread's newest message is just past the period, and the
    // recent one's is not.
    const at = new Date(recentMessage.created_at_ms + RETENTION_DAYS * DAY_MS).toISOString();
    const run = await t.stack.applyRetention(at);
    expect(run.erasure_id).toEqual(expect.any(String));
    const report = await erasureComplete(t, run.erasure_id as string, admin);
    expect(report).toMatchObject({ kind: "retention", requested_by: "retention" });

    expect(await leftovers(t, [old.id], [oldMessage.id])).toEqual(NOTHING_LEFT);
    expect((await t.request("GET", `/api/threads/${old.id}`, { token: dave })).status).toBe(404);
    expect((await t.request("GET", `/api/threads/${recent.id}`, { token: dave })).status).toBe(200);
    expect(await t.rowsInPostgres(recentMessage.id)).toBe(1);
    expect(await t.rowsInClickHouse(recentMessage.id)).toBe(1);

    // Nothing past the period now: the next run starts nothing.
    expect((await t.stack.applyRetention(at)).erasure_id).toBeNull();
  });
});
