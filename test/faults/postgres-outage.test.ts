/**
 * PostgreSQL stopped under steady load: accepting continues through SQS, reads are served from
 * Redis, the persist consumer retries with growing delays instead of pushing good records into the
 * DLQ, and once PostgreSQL is back every message is persisted exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkLedger, LoadGenerator } from "../support/load.ts";
import { PrivateServer } from "../support/services.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";

let postgres: Awaited<ReturnType<typeof PrivateServer.postgres>>;
let t: TestStack;

beforeAll(async () => {
  postgres = await PrivateServer.postgres();
  t = await startTestStack({
    migrate: true,
    env: {
      DATABASE_URL: postgres.url("chat_faults"),
      RATE_LIMIT_PER_SECOND: "0",
      BREAKER_HALF_OPEN_AFTER_MS: "1000",
      // A record that failed for a transient reason comes back after 2, 4, 8, 16 s: with
      // maxReceiveCount 5 it rides out 30 s of outage (without the delays: 5 × 2 s = 10 s).
      RETRY_BASE_DELAY_SECONDS: "2",
      RETRY_MAX_DELAY_SECONDS: "16",
    },
    consumers: { persist: { maxReceiveCount: 5 } },
  });
});

afterAll(async () => {
  await t.stop();
  await postgres.stop();
});

describe("PostgreSQL stopped mid-load", () => {
  it("keeps accepting through SQS and reading from Redis, then persists everything exactly once", async () => {
    const load = await LoadGenerator.withThreads(t, 6, 30);
    load.start();
    await load.answered(30);
    // Active threads are read: their newest pages are in Redis.
    for (const th of load.threadList) {
      await t.request("GET", `/api/threads/${th.id}/messages`, { token: th.token });
    }

    await postgres.stop();
    const stoppedAt = Date.now();
    // Longer than maxReceiveCount (5) × the queue's visibility timeout (2 s): without the growing
    // retry delays, good records would reach the DLQ during this outage.
    await load.answered(360, 60_000);
    const outageMs = Date.now() - stoppedAt;
    expect(outageMs).toBeGreaterThan(11_000);

    const during = load.since(stoppedAt);
    expect(during.every((a) => a.status === 201 && a.body?.durability === "queued")).toBe(true);
    for (const th of load.threadList) {
      const res = await t.request<{ messages: unknown[] }>("GET", `/api/threads/${th.id}/messages?limit=5`, {
        token: th.token,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-served-from")).toBe("cache");
    }
    expect(await t.queueDepth(t.stack.queues.persist.url)).toBeGreaterThan(0);
    expect(await t.queueDepth(t.stack.queues.persist.dlqUrl)).toBe(0);

    await postgres.start();
    await load.answered(30);
    await load.stop();

    expect(load.attempts.every((a) => a.status === 201)).toBe(true);
    await checkLedger(t, load.attempts, 90_000);
    expect(await t.queueDepth(t.stack.queues.persist.dlqUrl)).toBe(0);
  });
});
