/**
 * Redis is only a cache: after FLUSHALL, reads fall back to PostgreSQL and new messages get seqs
 * above every seq handed out before (a private Redis server, so the flush touches nothing else).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrivateRedis } from "../support/redis-server.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let redis: PrivateRedis;
let t: TestStack;
let alice: string;

beforeAll(async () => {
  redis = await PrivateRedis.start();
  t = await startTestStack({ env: { REDIS_URL: redis.url } });
  alice = await t.token("alice");
});

afterAll(async () => {
  await t.stop();
  await redis.stop();
});

type Page = { messages: { id: string; seq: number; content: string }[]; next_cursor: number | null };

describe("after a Redis FLUSHALL", () => {
  it("serves reads from PostgreSQL, re-warms the cache, and never reuses a seq", async () => {
    const thread = await t.createThread(alice);
    const before: { id: string; seq: number }[] = [];
    for (const text of ["one", "two", "three"]) {
      const res = await t.request<{ id: string; seq: number }>("POST", `/api/threads/${thread.id}/messages`, {
        token: alice,
        body: { message: text },
      });
      before.push(res.body);
    }
    await waitFor(
      async () => (await Promise.all(before.map((m) => t.rowsInPostgres(m.id)))).every((n) => n === 1),
      { what: "persisted" },
    );
    const first = before[0] as { id: string; seq: number };
    const cachedRead = await t.request("GET", `/api/messages/${first.id}`, { token: alice });
    expect(cachedRead.headers.get("x-served-from")).toBe("cache");

    expect(await t.redis.dbsize()).toBeGreaterThan(0);
    await t.redis.flushall();
    expect(await t.redis.dbsize()).toBe(0);

    const byId = await t.request("GET", `/api/messages/${first.id}`, { token: alice });
    expect(byId.status).toBe(200);
    expect(byId.headers.get("x-served-from")).toBe("database");
    expect(byId.body).toMatchObject({ id: first.id, content: "one" });

    const history = await t.request<Page>("GET", `/api/threads/${thread.id}/messages`, { token: alice });
    expect(history.status).toBe(200);
    expect(history.headers.get("x-served-from")).toBe("database");
    expect(history.body.messages.map((m) => m.content)).toEqual(["one", "two", "three"]);

    const again = await t.request<Page>("GET", `/api/threads/${thread.id}/messages`, { token: alice });
    expect(again.headers.get("x-served-from")).toBe("cache");
    expect(again.body.messages.map((m) => m.id)).toEqual(history.body.messages.map((m) => m.id));

    const after = await t.request<{ seq: number; cache: string }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      {
        token: alice,
        body: { message: "four" },
      },
    );
    expect(after.status).toBe(201);
    expect(after.body.cache).toBe("written");
    const highest = Math.max(...before.map((m) => m.seq));
    expect(after.body.seq).toBeGreaterThan(highest);

    const latest = await t.request<Page>("GET", `/api/threads/${thread.id}/messages`, { token: alice });
    expect(latest.body.messages.map((m) => m.content)).toEqual(["one", "two", "three", "four"]);
  });
});
