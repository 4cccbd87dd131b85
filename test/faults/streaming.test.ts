/**
 * Streamed replies under faults: Redis restarted (empty) mid-stream, an agent that vanishes
 * mid-stream (the idle timeout closes the reply), and a stop racing a completion (exactly one
 * wins, and every tier and every subscriber agree on which). A private Redis server, so the
 * restart touches nothing else.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrivateRedis } from "../support/redis-server.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let redis: PrivateRedis;
let t: TestStack;
let alice: string;
let agent: string;

const IDLE_SECONDS = 2;

beforeAll(async () => {
  redis = await PrivateRedis.start();
  t = await startTestStack({
    env: {
      REDIS_URL: redis.url,
      RATE_LIMIT_PER_SECOND: "0",
      BREAKER_HALF_OPEN_AFTER_MS: "500",
      STREAM_IDLE_TIMEOUT_SECONDS: String(IDLE_SECONDS),
    },
  });
  alice = await t.token("alice");
  agent = await t.token("assistant-bot", ["service"]);
});

afterAll(async () => {
  await t.stop();
  await redis.stop();
});

interface Wire {
  id: string;
  state: string;
  content: string;
  delta_index?: number;
  finish_reason: string | null;
  error: { code?: string } | null;
}

const open = async (threadId: string) => {
  const res = await t.request<Wire>("POST", `/api/threads/${threadId}/messages`, {
    token: agent,
    body: { message: "", state: "streaming" },
  });
  expect(res.status).toBe(201);
  return res.body;
};

const append = (id: string, index: number, text: string) =>
  t.request<Record<string, unknown>>("POST", `/api/messages/${id}/deltas`, {
    token: agent,
    body: { index, text },
  });

const read = async (id: string) =>
  (await t.request<Wire>("GET", `/api/messages/${id}`, { token: alice })).body;

const stored = async (id: string) =>
  (
    await t.pg.query<{ state: string; content: string; finish_reason: string | null }>(
      "SELECT state, content, finish_reason FROM messages WHERE id = $1",
      [id],
    )
  ).rows;

const archivedOnce = async (id: string, state: string, content: string): Promise<void> => {
  await waitFor(async () => ((await t.rowsInClickHouse(id)) === 1 ? true : undefined), { what: "archived" });
  const rows = await t.clickhouse.query({
    query: `SELECT state, content FROM messages FINAL WHERE id = '${id}'`,
    format: "JSONEachRow",
  });
  expect(await rows.json()).toEqual([{ state, content }]);
};

describe("Redis restarts, empty, mid-stream", () => {
  it("refuses deltas while Redis is away, then goes on from the next delta; the final content is the agent's", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    for (let i = 0; i < 5; i++) expect((await append(m.id, i, `w${i} `)).status).toBe(202);
    await waitFor(async () => ((await stored(m.id)).length === 1 ? true : undefined), { what: "opened row" });

    await redis.stop();
    const refused = await append(m.id, 5, "w5 ");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    await redis.resume();

    // The agent retries the same delta: the reply is held again from it (deltas 0-4 were only in Redis).
    await waitFor(async () => ((await append(m.id, 5, "w5 ")).status === 202 ? true : undefined), {
      what: "append accepted after the restart",
    });
    expect(await append(m.id, 6, "w6 ")).toMatchObject({ status: 202, body: { duplicate: false } });
    expect(await read(m.id)).toMatchObject({ state: "streaming", content: "w5 w6 ", delta_index: 6 });

    // A subscriber that comes now sees the reply as it stands, then the rest live.
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    expect(socket.frames.find((f) => f.type === "message.snapshot")?.message).toMatchObject({
      id: m.id,
      content: "w5 w6 ",
      delta_index: 6,
    });

    const full = "w0 w1 w2 w3 w4 w5 w6 ";
    const done = await t.request<Wire>("POST", `/api/messages/${m.id}/complete`, {
      token: agent,
      body: { finish_reason: "stop", content: full },
    });
    expect(done).toMatchObject({ status: 200, body: { state: "complete", content: full } });
    expect((await socket.next((f) => f.type === "message.completed")).message).toEqual(done.body);
    await waitFor(async () => ((await stored(m.id))[0]?.state === "complete" ? true : undefined), {
      what: "final row",
    });
    expect(await stored(m.id)).toEqual([{ state: "complete", content: full, finish_reason: "stop" }]);
    await archivedOnce(m.id, "complete", full);
  });
});

describe("the agent vanishes mid-stream", () => {
  it("closes the reply as error with finish_reason timeout and its content so far, everywhere", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    const m = await open(thread.id);
    await append(m.id, 0, "half ");
    await append(m.id, 1, "an answer");
    // Nothing more comes: the scheduled check (a delayed record on the persist queue) closes it.
    const closed = await socket.next((f) => f.type === "message.completed", (IDLE_SECONDS + 10) * 1000);
    expect(closed.message).toMatchObject({
      id: m.id,
      state: "error",
      finish_reason: "timeout",
      content: "half an answer",
      error: { code: "stream_idle" },
    });
    expect(await read(m.id)).toEqual(closed.message);
    expect(await append(m.id, 2, "late")).toMatchObject({
      status: 409,
      body: { error: { code: "message_not_streaming" } },
    });
    await waitFor(async () => ((await stored(m.id))[0]?.state === "error" ? true : undefined), {
      what: "final row",
    });
    expect(await stored(m.id)).toEqual([
      { state: "error", content: "half an answer", finish_reason: "timeout" },
    ]);
    await archivedOnce(m.id, "error", "half an answer");
  });

  it("does not close a reply whose agent keeps appending past the first check", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    const started = Date.now();
    let index = 0;
    // Deltas every 400 ms for longer than the idle timeout plus the first check's delay.
    while (Date.now() - started < (IDLE_SECONDS + 2) * 1000) {
      expect((await append(m.id, index, `${index} `)).status).toBe(202);
      index++;
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    expect((await read(m.id)).state).toBe("streaming");
    const done = await t.request<Wire>("POST", `/api/messages/${m.id}/complete`, {
      token: agent,
      body: { finish_reason: "stop" },
    });
    expect(done).toMatchObject({ status: 200, body: { state: "complete" } });
  });
});

describe("a stop racing a completion", () => {
  it("lets exactly one win; the loser gets 409 and every tier and subscriber shows the winner", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    const replies = [];
    for (let i = 0; i < 8; i++) {
      const m = await open(thread.id);
      await append(m.id, 0, `reply ${i} `);
      replies.push(m);
    }
    const outcomes = await Promise.all(
      replies.map(async (m) => {
        const [cancelled, completed] = await Promise.all([
          t.request<Wire>("POST", `/api/messages/${m.id}/cancel`, { token: alice }),
          t.request<Wire>("POST", `/api/messages/${m.id}/complete`, {
            token: agent,
            body: { finish_reason: "stop", content: "all of it" },
          }),
        ]);
        return { m, cancelled, completed };
      }),
    );
    for (const { m, cancelled, completed } of outcomes) {
      const statuses = [cancelled.status, completed.status].sort();
      expect(statuses).toEqual([200, 409]);
      const winner = cancelled.status === 200 ? cancelled.body : completed.body;
      const loser = cancelled.status === 200 ? completed : cancelled;
      expect(loser.body).toMatchObject({ error: { code: "message_not_streaming" } });
      expect(winner.state).toBe(cancelled.status === 200 ? "cancelled" : "complete");
      expect(await read(m.id)).toEqual(winner);
      const frame = await socket.next(
        (f) =>
          (f.type === "message.cancelled" || f.type === "message.completed") &&
          (f.message as Wire).id === m.id,
      );
      expect(frame.message).toEqual(winner);
      expect(
        socket.frames.filter(
          (f) => (f.message as Wire | undefined)?.id === m.id && f.type !== "message.created",
        ),
      ).toHaveLength(1);
      await waitFor(async () => ((await stored(m.id))[0]?.state === winner.state ? true : undefined), {
        what: `final row of ${m.id}`,
      });
      expect(await stored(m.id)).toEqual([
        { state: winner.state, content: winner.content, finish_reason: winner.finish_reason },
      ]);
      await archivedOnce(m.id, winner.state, winner.content);
    }
  });
});
