/**
 * The SQS endpoint unreachable under load: accepts fall back to a synchronous PostgreSQL commit and
 * say so. With PostgreSQL down as well: 503 with a retryable error and Retry-After, and nothing
 * half-written. When both are back, everything accepted reaches PostgreSQL and ClickHouse once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accepted, checkLedger, LoadGenerator } from "../support/load.ts";
import { freePort } from "../support/redis-server.ts";
import { PrivateServer } from "../support/services.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";

let postgres: Awaited<ReturnType<typeof PrivateServer.postgres>>;
let proxy: TcpProxy;
let t: TestStack;

beforeAll(async () => {
  postgres = await PrivateServer.postgres();
  const sqsPort = await freePort();
  // The handlers reach SQS through a proxy the test can cut; the queues themselves keep their state.
  proxy = await TcpProxy.start(await freePort(), sqsPort);
  t = await startTestStack({
    migrate: true,
    sqsPort,
    env: {
      DATABASE_URL: postgres.url("chat_faults"),
      AWS_ENDPOINT_URL_SQS: proxy.url,
      RATE_LIMIT_PER_SECOND: "0",
      BREAKER_HALF_OPEN_AFTER_MS: "1000",
    },
  });
});

afterAll(async () => {
  await t.stop();
  await proxy.cut();
  await postgres.stop();
});

describe("SQS unreachable mid-load", () => {
  it("commits synchronously, answers 503 only when PostgreSQL is down too, and loses nothing", async () => {
    const load = await LoadGenerator.withThreads(t, 6, 30);
    load.start();
    await load.answered(30);

    await proxy.cut();
    const cutAt = Date.now();
    await load.answered(60);
    const degraded = load.since(cutAt);
    expect(degraded.every((a) => a.status === 201)).toBe(true);
    expect(degraded.every((a) => a.body?.durability === "committed" && a.body?.degraded === true)).toBe(true);
    // Committed means committed: the rows are there as the answers arrive.
    for (const a of degraded.slice(0, 10)) expect(await t.rowsInPostgres(a.messageId)).toBe(1);

    await postgres.stop();
    const bothDownAt = Date.now();
    await load.answered(60);
    const refused = load.since(bothDownAt).filter((a) => a.startedAt > bothDownAt + 200);
    expect(refused.length).toBeGreaterThan(30);
    for (const a of refused) {
      expect(a.status).toBe(503);
      expect(a.body).toMatchObject({ error: { code: "service_unavailable" } });
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
    }

    await postgres.start();
    await proxy.restore();
    const restoredAt = Date.now();
    await load.answered(60);
    await load.stop();
    expect(
      load.since(restoredAt + 2000).every((a) => a.status === 201 && a.body?.durability === "queued"),
    ).toBe(true);

    // 503s wrote nothing anywhere; every 2xx (queued or committed) is in both stores exactly once.
    const ledger = await checkLedger(t, load.attempts, 90_000);
    expect(ledger.rejected).toBe(load.attempts.length - accepted(load.attempts).length);
    expect(ledger.rejected).toBeGreaterThan(30);
  });
});
