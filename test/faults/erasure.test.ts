/**
 * Erasure when a tier is down: ClickHouse stopped during an erasure (it waits at its step, says
 * so, and completes once ClickHouse is back), and PostgreSQL stopped during a delete request (a
 * clear 503, nothing half-deleted, and a retry finishes it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  clickhouseRows,
  erasureComplete,
  erasureStatus,
  leftovers,
  mergeClickHouse,
  NOTHING_LEFT,
  postgresRows,
} from "../support/erasure.ts";
import { PrivateServer } from "../support/services.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let clickhouse: Awaited<ReturnType<typeof PrivateServer.clickhouse>>;
let postgres: Awaited<ReturnType<typeof PrivateServer.postgres>>;
let t: TestStack;
let alice: string;
let admin: string;

beforeAll(async () => {
  [clickhouse, postgres] = await Promise.all([PrivateServer.clickhouse(), PrivateServer.postgres()]);
  t = await startTestStack({
    migrate: true,
    env: {
      CLICKHOUSE_URL: clickhouse.url,
      CLICKHOUSE_DATABASE: "chat_faults",
      DATABASE_URL: postgres.url("chat_faults"),
      RATE_LIMIT_PER_SECOND: "0",
      BREAKER_HALF_OPEN_AFTER_MS: "1000",
    },
    consumers: { analytics: { maxReceiveCount: 10 } },
  });
  alice = await t.token("alice");
  admin = await t.token("ops", ["admin"]);
}, 180_000);

afterAll(async () => {
  await t.stop();
  await Promise.all([clickhouse.stop(), postgres.stop()]);
});

/** A thread with three messages, archived in ClickHouse. */
const archivedThread = async () => {
  const thread = await t.createThread(alice);
  const ids = await t.postMessages(alice, thread.id, ["one", "two", "three"]);
  await waitFor(
    async () => (await Promise.all(ids.map((id) => t.rowsInClickHouse(id)))).every((n) => n === 1),
    {
      what: "archived",
    },
  );
  return { thread, ids };
};

describe("ClickHouse stopped during an erasure", () => {
  it("holds the erasure at its ClickHouse step, with the error, and completes it once ClickHouse is back", async () => {
    const { thread, ids } = await archivedThread();
    await clickhouse.stop();

    const deleted = await t.request<{ erasure_id: string }>("DELETE", `/api/threads/${thread.id}`, {
      token: alice,
    });
    expect(deleted.status).toBe(202);
    // PostgreSQL and Redis are done at once: every route answers 404.
    expect((await t.request("GET", `/api/threads/${thread.id}`, { token: alice })).status).toBe(404);

    const waiting = await waitFor(
      async () => {
        const report = await erasureStatus(t, deleted.body.erasure_id, admin);
        return report.attempts > 0 ? report : undefined;
      },
      { timeoutMs: 30_000, what: "a failed ClickHouse step" },
    );
    expect(waiting).toMatchObject({
      status: "in_progress",
      stage: "clickhouse",
      last_error: expect.stringContaining("clickhouse"),
      tiers: { postgres: { state: "done" }, clickhouse: { state: "pending" } },
    });
    expect(await postgresRows(t, [thread.id], ids)).toEqual(NOTHING_LEFT.postgres);

    await clickhouse.start();
    const report = await erasureComplete(t, deleted.body.erasure_id, admin, 60_000);
    expect(report).toMatchObject({
      last_error: null,
      tiers: { clickhouse: { state: "done", remaining_rows: 0 } },
    });
    expect(await leftovers(t, [thread.id], ids)).toEqual(NOTHING_LEFT);
    await mergeClickHouse(t);
    expect(await clickhouseRows(t, [thread.id], false)).toEqual({ messages: 0, feedback: 0 });
  });
});

describe("PostgreSQL stopped during a delete request", () => {
  it("answers a clear 503, deletes nothing, and a retry once it is back erases the thread", async () => {
    const { thread, ids } = await archivedThread();
    // Read once: the hot tier holds the thread.
    expect((await t.request("GET", `/api/threads/${thread.id}/messages`, { token: alice })).status).toBe(200);
    await postgres.stop();

    const refused = await t.request<{ error: { code: string; message: string } }>(
      "DELETE",
      `/api/threads/${thread.id}`,
      { token: alice },
    );
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: "service_unavailable", message: expect.any(String) });
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    // Nothing half-deleted: the hot tier still serves the thread.
    expect((await t.request("GET", `/api/threads/${thread.id}/messages`, { token: alice })).status).toBe(200);

    await postgres.start();
    const deleted = await waitFor(
      async () => {
        const res = await t.request<{ erasure_id: string }>("DELETE", `/api/threads/${thread.id}`, {
          token: alice,
        });
        return res.status === 202 ? res : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "the retried delete accepted" },
    );
    const report = await erasureComplete(t, deleted.body.erasure_id, admin);
    expect(report.counts).toMatchObject({ threads: 1, messages: 3 });
    expect(await leftovers(t, [thread.id], ids)).toEqual(NOTHING_LEFT);
    // Exactly one erasure recorded: the refused try wrote none.
    const { rows } = await t.pg.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM erasures WHERE subject = $1",
      [thread.id],
    );
    expect(rows[0]?.n).toBe(1);
  });
});
