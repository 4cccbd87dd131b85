/**
 * Redis stopped, then restarted empty, under steady load: accepting never stops (the cache is
 * skipped and the seq comes from PostgreSQL), reads fall back to PostgreSQL, and after the restart
 * the breaker closes, the cache fills again and seqs keep growing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Attempt, accepted, checkLedger, LoadGenerator } from "../support/load.ts";
import { PrivateRedis } from "../support/redis-server.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let redis: PrivateRedis;
let t: TestStack;

beforeAll(async () => {
  redis = await PrivateRedis.start();
  t = await startTestStack({
    env: { REDIS_URL: redis.url, RATE_LIMIT_PER_SECOND: "0", BREAKER_HALF_OPEN_AFTER_MS: "1000" },
  });
});

afterAll(async () => {
  await t.stop();
  await redis.stop();
});

/**
 * The tries answered other than 201, each checked to be a 503 with Retry-After and the key to retry
 * with: a try whose reservation may have reached Redis (a call in flight when Redis went away, or
 * one that timed out) cannot go on without it.
 */
const refusedWithKey = (attempts: readonly Attempt[]): Attempt[] => {
  const refused = attempts.filter((a) => a.status !== 201);
  for (const a of refused) {
    expect(a.status).toBe(503);
    expect(a.retryAfter).toMatch(/^\d+$/);
    expect(a.body?.error).toMatchObject({
      code: "service_unavailable",
      client_message_id: a.clientMessageId,
    });
  }
  return refused;
};

describe("Redis stopped mid-load", () => {
  it("keeps accepting, serves reads from PostgreSQL, and recovers without reusing a seq", async () => {
    const load = await LoadGenerator.withThreads(t, 8, 40);
    load.start();
    await load.answered(40);

    await redis.stop();
    const stoppedAt = Date.now();
    await load.answered(80);

    const during = load.since(stoppedAt);
    // Only tries in flight when Redis stopped (one per thread) can have been refused.
    expect(refusedWithKey(during).length).toBeLessThanOrEqual(load.threadList.length);
    expect(during.filter((a) => a.body?.cache === "skipped").length).toBeGreaterThan(40);
    // Without Redis, PostgreSQL allocates the seq and commits in the request, so that a retry of
    // the same key finds the original there; the outbox relay makes it visible in Redis later.
    expect(during.filter((a) => a.body?.durability === "committed").length).toBeGreaterThan(40);

    const [first] = accepted(load.attempts);
    const thread = load.threadList[0];
    if (first === undefined || thread === undefined) throw new Error("no traffic");
    await waitFor(async () => (await t.rowsInPostgres(first.messageId)) === 1, { what: "persisted" });
    const byId = await t.request("GET", `/api/messages/${first.messageId}`, { token: thread.token });
    expect(byId.status).toBe(200);
    expect(byId.headers.get("x-served-from")).toBe("database");
    const history = await t.request("GET", `/api/threads/${thread.id}/messages`, { token: thread.token });
    expect(history.status).toBe(200);
    expect(history.headers.get("x-served-from")).toBe("database");

    await redis.resume();
    const restartedAt = Date.now();
    await waitFor(() => load.since(restartedAt).some((a) => a.body?.cache === "written"), {
      what: "the cache written again",
    });
    await load.answered(40);
    await load.stop();

    const refused = refusedWithKey(load.attempts);
    expect(refused.length).toBeLessThanOrEqual(load.threadList.length);
    const tail = load.attempts.slice(-10);
    expect(tail.every((a) => a.body?.cache === "written")).toBe(true);
    // Every try is accepted (exactly once in each tier) or refused with 503 and its key (and
    // stored nowhere: the ledger checks both).
    const ledger = await checkLedger(t, load.attempts);
    expect(ledger.rejected).toBe(refused.length);

    // The cache warms again: a read fills it from PostgreSQL, the next is served from Redis.
    for (const th of load.threadList) {
      const fromDb = await t.request<{ messages: { id: string }[] }>(
        "GET",
        `/api/threads/${th.id}/messages?limit=100`,
        {
          token: th.token,
        },
      );
      const again = await t.request<{ messages: { id: string }[] }>(
        "GET",
        `/api/threads/${th.id}/messages?limit=100`,
        {
          token: th.token,
        },
      );
      expect(again.headers.get("x-served-from")).toBe("cache");
      expect(again.body.messages.map((m) => m.id)).toEqual(fromDb.body.messages.map((m) => m.id));
      const expected = accepted(load.attempts).filter((a) => a.threadId === th.id).length;
      expect(again.body.messages).toHaveLength(expected);
    }
  });
});

describe("Redis frozen mid-load", () => {
  it("keeps accept latency within the breaker's budget instead of waiting for Redis", async () => {
    const load = await LoadGenerator.withThreads(t, 8, 40);
    load.start();
    await load.answered(40);

    redis.pause();
    const pausedAt = Date.now();
    await load.answered(120);
    redis.unpause();
    const frozenMs = Date.now() - pausedAt;
    const during = load.since(pausedAt);
    await load.answered(40);
    await load.stop();

    expect(Date.now() - pausedAt).toBeGreaterThan(2000);
    // A try whose reservation timed out is refused with 503, Retry-After and the key to retry with
    // (it may hold a reservation); the others go to PostgreSQL's lane, refused by the open breaker
    // before they reach Redis. So only the tries in flight when Redis froze (one per thread) and
    // the breaker's trial calls (one per half-open period, 1 s here) can see a 503.
    expect(refusedWithKey(during).length).toBeLessThanOrEqual(
      load.threadList.length + Math.ceil(frozenMs / 1000),
    );
    expect(during.filter((a) => a.body?.cache === "skipped").length).toBeGreaterThan(100);
    // Redis gave no answer for seconds; no request waited for it longer than its timeouts allow.
    const latencies = during.map((a) => (a.endedAt as number) - a.startedAt).sort((x, y) => x - y);
    expect(latencies.at(-1)).toBeLessThan(1000);
    expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(100);
    await checkLedger(t, load.attempts);
  });
});
