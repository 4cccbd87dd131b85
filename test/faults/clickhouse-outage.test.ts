/**
 * ClickHouse stopped under steady load: accepting and persisting are unaffected, analytics batches
 * wait and retry, and after the restart every message arrives exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkLedger, LoadGenerator } from "../support/load.ts";
import { PrivateServer } from "../support/services.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let clickhouse: Awaited<ReturnType<typeof PrivateServer.clickhouse>>;
let t: TestStack;

beforeAll(async () => {
  clickhouse = await PrivateServer.clickhouse();
  t = await startTestStack({
    migrate: true,
    env: {
      CLICKHOUSE_URL: clickhouse.url,
      CLICKHOUSE_DATABASE: "chat_faults",
      RATE_LIMIT_PER_SECOND: "0",
      BREAKER_HALF_OPEN_AFTER_MS: "1000",
      RETRY_BASE_DELAY_SECONDS: "2",
      RETRY_MAX_DELAY_SECONDS: "8",
    },
    consumers: { analytics: { maxReceiveCount: 8 } },
  });
});

afterAll(async () => {
  await t.stop();
  await clickhouse.stop();
});

describe("ClickHouse stopped mid-load", () => {
  it("holds analytics batches until it is back, then archives every message exactly once", async () => {
    const load = await LoadGenerator.withThreads(t, 6, 30);
    load.start();
    await load.answered(30);

    await clickhouse.stop();
    const stoppedAt = Date.now();
    await load.answered(150);
    const during = load.since(stoppedAt);
    expect(during.every((a) => a.status === 201 && a.body?.durability === "queued")).toBe(true);
    // Persisting goes on without ClickHouse.
    await waitFor(
      async () => (await Promise.all(during.map((a) => t.rowsInPostgres(a.messageId)))).every((n) => n === 1),
      {
        what: "persisted while ClickHouse is down",
      },
    );
    expect(t.stack.eventSources.analytics.stats.failedRecords).toBeGreaterThan(0);

    await clickhouse.start();
    await load.answered(30);
    await load.stop();

    expect(load.attempts.every((a) => a.status === 201)).toBe(true);
    await checkLedger(t, load.attempts, 90_000);
    expect(await t.queueDepth(t.stack.queues.analytics.dlqUrl)).toBe(0);
  });
});
