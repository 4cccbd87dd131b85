/**
 * Feedback, thread usage and the admin analytics read against the local stack: feedback put,
 * replaced and removed (PostgreSQL at once, ClickHouse through the analytics queue), who may give
 * it, a thread's totals after streamed replies, and the analytics answer — exact figures from rows
 * written straight into ClickHouse on days of their own (the database is shared by concurrent
 * stacks), and the stack's own replies under a model name of this run.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toArchiveRow, toFeedbackRow } from "../../lambdas/adapters/clickhouse/clickhouse-message-archive.ts";
import type { Message, MessageRole, MessageState } from "../../lambdas/core/model.ts";
import type { AnalyticsFigures, FeedbackEvent } from "../../lambdas/core/ports.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let alice: string;
let bob: string;
let agent: string;
let root: string;
/** Only this run's replies report it. */
const MODEL = `feedback-test-${randomUUID()}`;

beforeAll(async () => {
  t = await startTestStack();
  alice = await t.token("alice");
  bob = await t.token("bob");
  agent = await t.token("assistant-bot", ["service"]);
  root = await t.token("root", ["admin"]);
});

afterAll(async () => {
  await t.stop();
});

interface Wire {
  id: string;
  state: string;
  created_at: number;
}

interface ErrorBody {
  error: { code: string; message: string; request_id: string };
}

type Group = AnalyticsFigures & { key: string | null };

interface Report {
  from: string;
  to: string;
  group_by: string;
  groups: Group[];
  totals: AnalyticsFigures;
}

const post = async (threadId: string, token: string, body: Record<string, unknown>) => {
  const res = await t.request<Wire>("POST", `/api/threads/${threadId}/messages`, { token, body });
  expect(res.status).toBe(201);
  return res.body;
};

/** Opens a reply, streams two deltas, and completes it with this usage. */
const streamedReply = async (
  threadId: string,
  usage = { model: MODEL, input_tokens: 3, output_tokens: 5 },
) => {
  const opened = await post(threadId, agent, { role: "assistant", message: "", state: "streaming" });
  for (const [index, text] of ["Lis", "bon."].entries()) {
    const res = await t.request("POST", `/api/messages/${opened.id}/deltas`, {
      token: agent,
      body: { index, text },
    });
    expect(res.status).toBe(202);
  }
  const done = await t.request<Wire>("POST", `/api/messages/${opened.id}/complete`, {
    token: agent,
    body: { finish_reason: "stop", usage },
  });
  expect(done.status).toBe(200);
  return done.body;
};

const putFeedback = (messageId: string, body: unknown, token = alice) =>
  t.request<Record<string, unknown> & ErrorBody>("PUT", `/api/messages/${messageId}/feedback`, {
    token,
    body,
  });

const deleteFeedback = (messageId: string, token = alice) =>
  t.request<Record<string, unknown> & ErrorBody>("DELETE", `/api/messages/${messageId}/feedback`, { token });

const feedbackInPostgres = async (messageId: string) =>
  (
    await t.pg.query<{ user_id: string; rating: string; reason: string | null; comment: string | null }>(
      "SELECT user_id, rating, reason, comment FROM message_feedback WHERE message_id = $1",
      [messageId],
    )
  ).rows;

/** The (reply, user)'s row as a deduplicating read sees it. */
const feedbackInClickHouse = async (messageId: string, userId = "alice") => {
  const result = await t.clickhouse.query({
    query: `SELECT rating, reason, model, deleted, thread_id FROM feedback FINAL
             WHERE message_id = '${messageId}' AND user_id = '${userId}'`,
    format: "JSONEachRow",
  });
  return result.json<{ rating: string; reason: string; model: string; deleted: number; thread_id: string }>();
};

const usageOf = (threadId: string, token = alice) =>
  t.request<Record<string, unknown> & ErrorBody>("GET", `/api/threads/${threadId}/usage`, { token });

const analytics = (query: string, token = root) =>
  t.request<Report & ErrorBody>("GET", `/api/admin/analytics${query}`, { token });

describe("feedback on a reply", () => {
  it("is put, replaced and removed: PostgreSQL at once, ClickHouse through the analytics queue", async () => {
    const thread = await t.createThread(alice);
    await post(thread.id, alice, { message: "Where should we go?" });
    const reply = await streamedReply(thread.id);

    // Right after the reply ended: PostgreSQL may still be storing it (the service waits for it).
    const put = await putFeedback(reply.id, { rating: "up", reason: "helpful" });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({
      message_id: reply.id,
      user_id: "alice",
      rating: "up",
      reason: "helpful",
      comment: null,
      updated_at: expect.any(Number),
      updated_at_ms: expect.any(Number),
    });
    expect(put.body.updated_at).toBe(Math.floor((put.body.updated_at_ms as number) / 1000));
    expect(await feedbackInPostgres(reply.id)).toEqual([
      { user_id: "alice", rating: "up", reason: "helpful", comment: null },
    ]);
    const upInClickHouse = await waitFor(async () => (await feedbackInClickHouse(reply.id))[0], {
      what: "the rating in ClickHouse",
    });
    expect(upInClickHouse).toEqual({
      rating: "up",
      reason: "helpful",
      model: MODEL,
      deleted: 0,
      thread_id: thread.id,
    });

    // PUT replaces: one rating per user and reply; a field left out is cleared.
    const replaced = await putFeedback(reply.id, { rating: "down", comment: "Porto is closer" });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ rating: "down", reason: null, comment: "Porto is closer" });
    expect(replaced.body.updated_at_ms as number).toBeGreaterThan(put.body.updated_at_ms as number);
    expect(await feedbackInPostgres(reply.id)).toEqual([
      { user_id: "alice", rating: "down", reason: null, comment: "Porto is closer" },
    ]);
    await waitFor(async () => (await feedbackInClickHouse(reply.id))[0]?.rating === "down", {
      what: "the new rating in ClickHouse",
    });

    // DELETE removes it (204), and again (idempotent); ClickHouse keeps the removal as deleted = 1.
    expect((await deleteFeedback(reply.id)).status).toBe(204);
    expect(await feedbackInPostgres(reply.id)).toEqual([]);
    expect((await deleteFeedback(reply.id)).status).toBe(204);
    await waitFor(async () => (await feedbackInClickHouse(reply.id))[0]?.deleted === 1, {
      what: "the removal in ClickHouse",
    });
    expect(await feedbackInClickHouse(reply.id)).toEqual([
      expect.objectContaining({ deleted: 1, model: MODEL }),
    ]);
    // Every change was sent: none left for a later request.
    const unsent = await t.pg.query(
      "SELECT 1 FROM message_feedback_changes WHERE message_id = $1 AND due_at_ms IS NOT NULL",
      [reply.id],
    );
    expect(unsent.rows).toEqual([]);
  });

  it("is refused on a user's message (409), on another user's thread or an unknown id (404), to a service (403)", async () => {
    const thread = await t.createThread(alice);
    const question = await post(thread.id, alice, { message: "Where?" });
    const reply = await post(thread.id, agent, { message: "Lisbon.", role: "assistant" });

    const expectError = (res: { status: number; body: ErrorBody }, status: number, code: string) => {
      expect(res.status).toBe(status);
      expect(res.body.error).toMatchObject({
        code,
        message: expect.any(String),
        request_id: expect.any(String),
      });
    };
    expectError(await putFeedback(question.id, { rating: "up" }), 404, "message_not_found");
    expectError(await deleteFeedback(question.id), 404, "message_not_found");
    expectError(await putFeedback(reply.id, { rating: "up" }, bob), 404, "message_not_found");
    expectError(await deleteFeedback(reply.id, bob), 404, "message_not_found");
    expectError(await putFeedback(reply.id, { rating: "up" }, root), 404, "message_not_found");
    expectError(await putFeedback(randomUUID(), { rating: "up" }), 404, "message_not_found");
    expectError(await putFeedback(reply.id, { rating: "up" }, agent), 403, "role_not_allowed");
    expectError(await putFeedback("not-a-uuid", { rating: "up" }), 400, "invalid_id");
    expectError(await putFeedback(reply.id, { rating: "meh" }), 422, "validation_failed");
    expectError(
      await putFeedback(reply.id, { rating: "up", reason: "x".repeat(201) }),
      422,
      "validation_failed",
    );
    expectError(await putFeedback(reply.id, { rating: "up", extra: 1 }), 422, "validation_failed");
    expect((await t.request("PUT", `/api/messages/${reply.id}/feedback`, { token: alice })).status).toBe(400);
    expect(await feedbackInPostgres(reply.id)).toEqual([]);

    // The owner may, on the reply posted whole.
    expect((await putFeedback(reply.id, { rating: "up" })).status).toBe(200);
  });
});

describe("feedback changes on their way to ClickHouse", () => {
  it("keeps concurrent changes of one rating in order: ClickHouse ends where PostgreSQL does", async () => {
    const thread = await t.createThread(alice);
    const reply = await streamedReply(thread.id);
    expect((await putFeedback(reply.id, { rating: "up" })).status).toBe(200);

    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        i % 4 === 3
          ? deleteFeedback(reply.id)
          : putFeedback(reply.id, { rating: i % 2 === 0 ? "up" : "down" }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual(
      [...Array(9).fill(200), ...Array(3).fill(204)].sort(),
    );
    const versions = answers.flatMap((a) => (a.status === 200 ? [a.body.updated_at_ms as number] : []));
    expect(new Set(versions).size).toBe(versions.length);

    const [stored] = await feedbackInPostgres(reply.id);
    const [change] = (
      await t.pg.query<{ version: string; deleted: boolean }>(
        "SELECT version, (event->>'deleted')::boolean AS deleted FROM message_feedback_changes WHERE message_id = $1",
        [reply.id],
      )
    ).rows;
    // The newest change is the row PostgreSQL kept (or its removal).
    expect(change?.deleted).toBe(stored === undefined);
    await waitFor(
      async () => {
        const [row] = await feedbackInClickHouse(reply.id);
        return (
          row !== undefined &&
          row.deleted === (stored === undefined ? 1 : 0) &&
          (stored === undefined || row.rating === stored.rating)
        );
      },
      { what: "ClickHouse to end with PostgreSQL's rating" },
    );
  });

  it("sends a change left unsent (its request could not reach the queue) with a later request", async () => {
    const thread = await t.createThread(alice);
    const reply = await post(thread.id, agent, { message: "Lisbon.", role: "assistant" });
    const other = await post(thread.id, agent, { message: "Or Porto.", role: "assistant" });
    expect((await putFeedback(reply.id, { rating: "up" })).status).toBe(200);
    // As a request leaves it when the analytics queue refused its change: recorded, not sent.
    await t.pg.query(
      `INSERT INTO message_feedback_changes (message_id, user_id, version, event, due_at_ms)
       VALUES ($1, 'carol', 5, $2::jsonb, 0)`,
      [
        reply.id,
        JSON.stringify({
          message_id: reply.id,
          thread_id: thread.id,
          user_id: "carol",
          rating: "down",
          reason: "late",
          model: "",
          deleted: false,
          message_created_at: reply.created_at,
        }),
      ],
    );

    expect((await putFeedback(other.id, { rating: "up" })).status).toBe(200);

    await waitFor(async () => (await feedbackInClickHouse(reply.id, "carol"))[0]?.reason === "late", {
      what: "the late change in ClickHouse",
    });
    const unsent = await t.pg.query("SELECT 1 FROM message_feedback_changes WHERE due_at_ms IS NOT NULL");
    expect(unsent.rows).toEqual([]);
  });
});

describe("a thread's usage", () => {
  it("counts messages by role, replies by state, tokens and feedback, as PostgreSQL holds them", async () => {
    const thread = await t.createThread(alice);
    await post(thread.id, alice, { message: "Plan a trip" });
    const first = await streamedReply(thread.id, { model: MODEL, input_tokens: 3, output_tokens: 5 });
    await post(thread.id, alice, { message: "Cheaper?" });
    const second = await streamedReply(thread.id, { model: MODEL, input_tokens: 10, output_tokens: 20 });
    // A reply the owner stops: cancelled.
    const stopped = await post(thread.id, agent, { role: "assistant", message: "", state: "streaming" });
    expect((await t.request("POST", `/api/messages/${stopped.id}/cancel`, { token: alice })).status).toBe(
      200,
    );
    expect((await putFeedback(first.id, { rating: "up" })).status).toBe(200);
    expect((await putFeedback(second.id, { rating: "down" })).status).toBe(200);

    const expected = {
      thread_id: thread.id,
      messages: { total: 5, user: 2, assistant: 3, system: 0 },
      assistant_states: { streaming: 0, complete: 2, cancelled: 1, error: 0 },
      tokens: { input: 13, output: 25 },
      feedback: { up: 1, down: 0 + 1 },
    };
    // The final rows reach PostgreSQL through the persist consumer.
    const settled = await waitFor(
      async () => {
        const res = await usageOf(thread.id);
        return JSON.stringify(res.body) === JSON.stringify(expected) ? res : undefined;
      },
      { what: "the thread's totals" },
    );
    expect(settled.status).toBe(200);
    expect(settled.body).toEqual(expected);

    // A service may ask too; another user, an admin and an unknown thread get 404.
    expect((await usageOf(thread.id, agent)).body).toEqual(expected);
    for (const [id, token] of [
      [thread.id, bob],
      [thread.id, root],
      [randomUUID(), alice],
    ] as const) {
      const res = await usageOf(id, token);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("thread_not_found");
    }
  });
});

describe("the admin analytics read", () => {
  it("is for admins only: 403 admin_required for a user and for a service", async () => {
    for (const token of [alice, agent]) {
      const res = await analytics("", token);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("admin_required");
    }
  });

  it.each([
    ["?from=2024-03-02&to=2024-03-01", "from"],
    ["?from=2024-01-01&to=2025-01-01", "to"],
    ["?from=2024-02-30", "from"],
    ["?to=01/02/2024", "to"],
    ["?group_by=user", "group_by"],
    ["?from=2024-01-01&bogus=1", "(body)"],
  ])("answers %s with 422 validation_failed", async (query, path) => {
    const res = await analytics(query);
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({ code: "validation_failed" });
    expect(JSON.stringify(res.body.error)).toContain(path);
  });

  it("defaults to the last 7 days (UTC), per day, every day listed", async () => {
    const res = await analytics("");
    expect(res.status).toBe(200);
    const today = new Date().toISOString().slice(0, 10);
    expect(res.body).toMatchObject({ to: today, group_by: "day" });
    expect(res.body.groups.map((g) => g.key)).toHaveLength(7);
    expect(res.body.groups.at(-1)?.key).toBe(today);
  });

  it("computes each group from known rows, each message and each rating once", async () => {
    // Two days of their own, far in the past, and models of their own.
    const base = Date.UTC(1975, 0, 1) + Math.floor(Math.random() * 10_000) * 86_400_000;
    const [day1, day2, day3] = [0, 1, 2].map((d) =>
      new Date(base + d * 86_400_000).toISOString().slice(0, 10),
    );
    const [modelX, modelY] = [`x-${randomUUID()}`, `y-${randomUUID()}`];
    const threadId = randomUUID();
    let seq = 0;
    const message = (
      dayMs: number,
      role: MessageRole,
      extra: Partial<Message> & { state?: MessageState } = {},
    ): Message => ({
      id: randomUUID(),
      thread_id: threadId,
      seq: ++seq,
      role,
      user_id: role === "user" ? "alice" : "bot",
      content: "x",
      metadata: {},
      client_message_id: null,
      created_at: Math.floor((dayMs + 3_600_000 * seq) / 1000),
      created_at_ms: dayMs + 3_600_000 * seq,
      ...extra,
    });
    const reply = (dayMs: number, state: MessageState, model: string, timings: [number | null, number]) =>
      message(dayMs, "assistant", {
        state,
        finish_reason: state === "complete" ? "stop" : state,
        usage: { model, input_tokens: 10, output_tokens: 100 },
        first_delta_ms: timings[0],
        duration_ms: timings[1],
      });
    const a = reply(base, "complete", modelX, [100, 1000]);
    const b = reply(base, "complete", modelX, [300, 3000]);
    const c = reply(base, "cancelled", modelX, [null, 500]);
    const d = reply(base + 86_400_000, "error", modelY, [50, 50]);
    const day1Rows = [message(base, "user"), message(base, "user"), message(base, "system"), a, b, c];
    // `a` archived twice: first as it was opened (an older archived_at_ms); FINAL keeps the newer.
    const opened: Message = { ...a, state: "streaming", finish_reason: null, usage: null, duration_ms: null };
    await t.clickhouse.insert({
      table: "messages",
      values: [
        toArchiveRow(opened, 1),
        ...day1Rows.map((m) => toArchiveRow(m, 2)),
        toArchiveRow(d, 2),
        toArchiveRow(message(base + 86_400_000, "user"), 2),
      ],
      format: "JSONEachRow",
    });
    const rating = (m: Message, extra: Partial<FeedbackEvent>): FeedbackEvent => ({
      message_id: m.id,
      thread_id: threadId,
      user_id: "alice",
      rating: "up",
      reason: null,
      model: m.usage?.model ?? "",
      deleted: false,
      message_created_at: m.created_at,
      updated_at_ms: 1,
      ...extra,
    });
    await t.clickhouse.insert({
      table: "feedback",
      values: [
        // a: down, then up (counts as up once).
        rating(a, { rating: "down", updated_at_ms: 1 }),
        rating(a, { rating: "up", updated_at_ms: 2 }),
        // b: down, then removed (counts nothing).
        rating(b, { rating: "down", updated_at_ms: 1 }),
        rating(b, { rating: "down", deleted: true, updated_at_ms: 2 }),
        // c: down by two users.
        rating(c, { rating: "down" }),
        rating(c, { rating: "down", user_id: "carol" }),
        rating(d, { rating: "up" }),
      ].map(toFeedbackRow),
      format: "JSONEachRow",
    });

    const empty = { p50: null, p95: null };
    const xDay1 = {
      messages: { total: 6, user: 2, assistant: 3, system: 1 },
      assistant_states: { streaming: 0, complete: 2, cancelled: 1, error: 0 },
      tokens: { input: 30, output: 300 },
      // 100 and 300; 500, 1000 and 3000 (linear interpolation).
      first_delta_ms: { p50: 200, p95: 290 },
      duration_ms: { p50: 1000, p95: 2800 },
      feedback: { up: 1, down: 2 },
    };
    const yDay2 = {
      messages: { total: 2, user: 1, assistant: 1, system: 0 },
      assistant_states: { streaming: 0, complete: 0, cancelled: 0, error: 1 },
      tokens: { input: 10, output: 100 },
      first_delta_ms: { p50: 50, p95: 50 },
      duration_ms: { p50: 50, p95: 50 },
      feedback: { up: 1, down: 0 },
    };
    const byDay = await analytics(`?from=${day1}&to=${day3}&group_by=day`);
    expect(byDay.status).toBe(200);
    expect(byDay.body).toEqual({
      from: day1,
      to: day3,
      group_by: "day",
      groups: [
        { key: day1, ...xDay1 },
        { key: day2, ...yDay2 },
        {
          key: day3,
          messages: { total: 0, user: 0, assistant: 0, system: 0 },
          assistant_states: { streaming: 0, complete: 0, cancelled: 0, error: 0 },
          tokens: { input: 0, output: 0 },
          first_delta_ms: empty,
          duration_ms: empty,
          feedback: { up: 0, down: 0 },
        },
      ],
      totals: {
        messages: { total: 8, user: 3, assistant: 4, system: 1 },
        assistant_states: { streaming: 0, complete: 2, cancelled: 1, error: 1 },
        tokens: { input: 40, output: 400 },
        // 50, 100, 300; 50, 500, 1000, 3000.
        first_delta_ms: { p50: 100, p95: 280 },
        duration_ms: { p50: 750, p95: 2700 },
        feedback: { up: 2, down: 2 },
      },
    });

    const byModel = await analytics(`?from=${day1}&to=${day3}&group_by=model`);
    expect(byModel.status).toBe(200);
    const groups = new Map(byModel.body.groups.map((g) => [g.key, g]));
    expect([...groups.keys()]).toEqual(
      [modelX, modelY, null].sort((p, q) => (p === null ? 1 : q === null ? -1 : p < q ? -1 : 1)),
    );
    expect(groups.get(modelX)).toEqual({
      key: modelX,
      ...xDay1,
      messages: { total: 3, user: 0, assistant: 3, system: 0 },
    });
    expect(groups.get(modelY)).toEqual({
      key: modelY,
      ...yDay2,
      messages: { total: 1, user: 0, assistant: 1, system: 0 },
    });
    // Messages that name no model: the users' and the system's.
    expect(groups.get(null)).toMatchObject({
      messages: { total: 4, user: 3, assistant: 0, system: 1 },
      tokens: { input: 0, output: 0 },
      first_delta_ms: empty,
      feedback: { up: 0, down: 0 },
    });
  });

  it("shows this stack's replies and their feedback once the pipeline has archived them", async () => {
    const thread = await t.createThread(alice);
    const model = `live-${randomUUID()}`;
    const replies = [
      await streamedReply(thread.id, { model, input_tokens: 7, output_tokens: 11 }),
      await streamedReply(thread.id, { model, input_tokens: 1, output_tokens: 2 }),
    ];
    expect((await putFeedback(replies[0]?.id as string, { rating: "up" })).status).toBe(200);
    expect((await putFeedback(replies[1]?.id as string, { rating: "down" })).status).toBe(200);
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

    const group = await waitFor(
      async () => {
        const res = await analytics(`?from=${day(-1)}&to=${day(1)}&group_by=model`);
        const found = res.body.groups?.find((g) => g.key === model);
        return found?.assistant_states.complete === 2 && found.feedback.down === 1 ? found : undefined;
      },
      { what: "the replies and their feedback in the analytics answer" },
    );
    expect(group).toMatchObject({
      messages: { total: 2, user: 0, assistant: 2, system: 0 },
      tokens: { input: 8, output: 13 },
      feedback: { up: 1, down: 1 },
    });
    expect(group.first_delta_ms.p50).toEqual(expect.any(Number));
    expect(group.duration_ms.p95).toBeGreaterThanOrEqual(group.duration_ms.p50 as number);
  });
});
