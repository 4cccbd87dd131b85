/** What an erasure left of threads in each tier, read with the real clients; and its progress. */
import { primaries } from "../../lambdas/adapters/redis/redis-thread-eraser.ts";
import type { ErasureReport } from "../../lambdas/core/erasure-service.ts";
import type { TestStack } from "./test-stack.ts";
import { waitFor } from "./wait.ts";

export interface Leftovers {
  readonly postgres: {
    threads: number;
    messages: number;
    feedback: number;
    feedbackChanges: number;
    outbox: number;
  };
  /** As a deduplicating query (FINAL) sees them. */
  readonly clickhouse: { messages: number; feedback: number };
  /** Keys under the threads' hash tags, and lookups of the messages. */
  readonly redis: string[];
}

/** Every key of this stack under these threads' hash tags, and these messages' lookups. */
export const redisKeysOf = async (
  t: TestStack,
  threadIds: readonly string[],
  messageIds: readonly string[],
): Promise<string[]> => {
  const found: string[] = [];
  for (const node of await primaries(t.redis)) {
    for (const threadId of threadIds) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(
          cursor,
          "MATCH",
          `${t.redisPrefix}{t:${threadId}}*`,
          "COUNT",
          1000,
        );
        cursor = next;
        found.push(...keys);
      } while (cursor !== "0");
    }
  }
  for (const id of messageIds) {
    const key = `${t.redisPrefix}{m:${id}}`;
    if ((await t.redis.exists(key)) === 1) found.push(key);
  }
  return found;
};

const quoted = (ids: readonly string[]): string =>
  ids.map((id) => `'${id.replace(/[^0-9a-f-]/gi, "")}'`).join(",");

export const clickhouseRows = async (
  t: TestStack,
  threadIds: readonly string[],
  final = true,
): Promise<{ messages: number; feedback: number }> => {
  const count = async (table: string) => {
    const result = await t.clickhouse.query({
      query: `SELECT count() AS n FROM ${table} ${final ? "FINAL" : ""} WHERE thread_id IN (${quoted(threadIds)})`,
      format: "JSONEachRow",
    });
    return Number((await result.json<{ n: string }>())[0]?.n ?? 0);
  };
  return { messages: await count("messages"), feedback: await count("feedback") };
};

export const postgresRows = async (
  t: TestStack,
  threadIds: readonly string[],
  messageIds: readonly string[],
): Promise<Leftovers["postgres"]> => {
  const { rows } = await t.pg.query<Leftovers["postgres"]>(
    `SELECT (SELECT count(*)::int FROM threads WHERE id = ANY($1::uuid[])) AS threads,
            (SELECT count(*)::int FROM messages WHERE thread_id = ANY($1::uuid[]) OR id = ANY($2::uuid[])) AS messages,
            (SELECT count(*)::int FROM message_feedback WHERE message_id = ANY($2::uuid[])) AS feedback,
            (SELECT count(*)::int FROM message_feedback_changes WHERE message_id = ANY($2::uuid[])) AS "feedbackChanges",
            (SELECT count(*)::int FROM analytics_outbox WHERE message_id = ANY($2::uuid[])) AS outbox`,
    [threadIds, messageIds],
  );
  return rows[0] as Leftovers["postgres"];
};

export const leftovers = async (
  t: TestStack,
  threadIds: readonly string[],
  messageIds: readonly string[],
): Promise<Leftovers> => {
  return {
    postgres: await postgresRows(t, threadIds, messageIds),
    clickhouse: await clickhouseRows(t, threadIds),
    redis: await redisKeysOf(t, threadIds, messageIds),
  };
};

export const NOTHING_LEFT: Leftovers = {
  postgres: { threads: 0, messages: 0, feedback: 0, feedbackChanges: 0, outbox: 0 },
  clickhouse: { messages: 0, feedback: 0 },
  redis: [],
};

export const erasureStatus = async (
  t: TestStack,
  erasureId: string,
  token: string,
): Promise<ErasureReport> => {
  const res = await t.request<ErasureReport>("GET", `/api/admin/erasures/${erasureId}`, { token });
  if (res.status !== 200) throw new Error(`erasure status: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
};

/** Waits until the erasure reports complete (the worker runs on the analytics consumer). */
export const erasureComplete = (t: TestStack, erasureId: string, token: string, timeoutMs = 30_000) =>
  waitFor(
    async () => {
      const report = await erasureStatus(t, erasureId, token);
      return report.status === "complete" ? report : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `erasure ${erasureId} complete` },
  );

/** Merges ClickHouse's parts now, so a count without FINAL shows what is on disk. */
export const mergeClickHouse = async (t: TestStack): Promise<void> => {
  for (const table of ["messages", "feedback"]) {
    await t.clickhouse.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
  }
};
