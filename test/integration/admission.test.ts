/**
 * Overload is not an outage: a process with more accepts in flight than it may carry refuses the
 * excess at the door with `503 overloaded` and Retry-After, before any tier is touched. The client's
 * side of that promise, under concurrency: every try answered 201 is in history and in PostgreSQL
 * exactly once, every shed try stored nothing, and its retry with the same key is accepted once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let alice: string;

beforeAll(async () => {
  t = await startTestStack({ env: { ADMISSION_MAX_INFLIGHT: "2", RATE_LIMIT_PER_SECOND: "0" } });
  alice = await t.token("alice");
});

afterAll(async () => {
  await t.stop();
});

interface Posted {
  readonly id: string;
  readonly client_message_id: string;
}

const historyIds = async (threadId: string): Promise<string[]> => {
  const page = await t.request<{ messages: { id: string }[] }>(
    "GET",
    `/api/threads/${threadId}/messages?limit=100`,
    { token: alice },
  );
  expect(page.status).toBe(200);
  return page.body.messages.map((m) => m.id);
};

describe("admission control", () => {
  it("sheds HTTP accepts past the in-flight limit with 503 overloaded; nothing shed is stored, and each retry is accepted once", async () => {
    const thread = await t.createThread(alice);
    const keys = Array.from({ length: 40 }, (_, i) => `shed-${i}`);
    const post = (key: string) =>
      t.request<Posted & { error?: { code: string; client_message_id?: string } }>(
        "POST",
        `/api/threads/${thread.id}/messages`,
        { token: alice, body: { message: key, client_message_id: key } },
      );

    const first = await Promise.all(keys.map(post));

    expect(new Set(first.map((r) => r.status))).toEqual(new Set([201, 503]));
    const accepted = first.filter((r) => r.status === 201).map((r) => r.body);
    const shed = keys.filter((_, i) => first[i]?.status === 503);
    expect(shed.length).toBeGreaterThan(0);
    for (const r of first.filter((r) => r.status === 503)) {
      expect(r.body.error?.code).toBe("overloaded");
      expect(r.headers.get("retry-after")).toBe("1");
    }
    // Read-your-writes for what was accepted, and nothing of what was shed.
    const afterFirst = await historyIds(thread.id);
    expect(afterFirst.sort()).toEqual(accepted.map((m) => m.id).sort());

    // The client retries each shed try with its key, one at a time (what Retry-After asks for).
    const retried: Posted[] = [];
    for (const key of shed) {
      const res = await post(key);
      expect(res.status).toBe(201);
      retried.push(res.body);
    }
    const all = [...accepted, ...retried];
    expect(new Set(all.map((m) => m.client_message_id))).toEqual(new Set(keys));
    expect((await historyIds(thread.id)).sort()).toEqual(all.map((m) => m.id).sort());
    await waitFor(
      async () => {
        const { rows } = await t.pg.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
          [thread.id],
        );
        return rows[0]?.n === keys.length;
      },
      { what: "every accepted message in PostgreSQL" },
    );
    const { rows } = await t.pg.query<{ client_message_id: string; n: number }>(
      "SELECT client_message_id, count(*)::int AS n FROM messages WHERE thread_id = $1 GROUP BY 1",
      [thread.id],
    );
    expect(rows.every((r) => r.n === 1)).toBe(true);
    expect(new Set(rows.map((r) => r.client_message_id))).toEqual(new Set(keys));
  });

  it("sheds WebSocket sendMessage frames with an overloaded error frame naming the request", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    const frames = Array.from({ length: 30 }, (_, i) =>
      socket.request({
        action: "sendMessage",
        threadId: thread.id,
        message: `ws-${i}`,
        client_message_id: `ws-${i}`,
      }),
    );
    const answers = await Promise.all(frames);

    const acked = answers.filter((f) => f.type === "message.created");
    const refused = answers.filter((f) => f.type === "error");
    expect(acked.length + refused.length).toBe(answers.length);
    expect(refused.length).toBeGreaterThan(0);
    for (const f of refused) expect(f).toMatchObject({ code: "overloaded", retry_after_seconds: 1 });
    const ackedIds = acked.map((f) => (f.message as { id: string }).id);
    expect((await historyIds(thread.id)).sort()).toEqual(ackedIds.sort());
  });
});
