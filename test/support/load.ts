/**
 * Steady, bounded load for fault tests, and the ledger that proves nothing was lost: every message
 * answered 2xx ends up exactly once in PostgreSQL and in ClickHouse, and nothing answered 4xx/5xx
 * (or not answered at all) is written anywhere.
 */
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { messageIdFor } from "../../lambdas/core/ids.ts";
import type { TestStack } from "./test-stack.ts";
import { waitFor } from "./wait.ts";

export interface LoadThread {
  readonly id: string;
  readonly token: string;
  readonly userId: string;
}

export interface Attempt {
  readonly threadId: string;
  readonly userId: string;
  readonly clientMessageId: string;
  /** The id the message gets if accepted (derived from thread, author and client id). */
  readonly messageId: string;
  readonly startedAt: number;
  endedAt?: number;
  status?: number;
  body?: Record<string, unknown>;
  retryAfter?: string | null;
}

export const accepted = (attempts: readonly Attempt[]): Attempt[] =>
  attempts.filter((a) => a.status !== undefined && a.status >= 200 && a.status < 300);

export class LoadGenerator {
  readonly attempts: Attempt[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  private next = 0;

  constructor(
    private readonly t: TestStack,
    private readonly threads: readonly LoadThread[],
    private readonly ratePerSecond: number,
  ) {}

  static async withThreads(t: TestStack, count: number, ratePerSecond: number): Promise<LoadGenerator> {
    const threads: LoadThread[] = [];
    for (let i = 0; i < count; i++) {
      const userId = `load-${randomUUID().slice(0, 8)}`;
      const token = await t.token(userId);
      threads.push({ id: (await t.createThread(token)).id, token, userId });
    }
    return new LoadGenerator(t, threads, ratePerSecond);
  }

  get threadList(): readonly LoadThread[] {
    return this.threads;
  }

  /** Fixed arrival rate; each thread has at most one request in flight, so its seqs are ordered. */
  start(): void {
    this.timer = setInterval(() => {
      const thread = this.threads[this.next++ % this.threads.length] as LoadThread;
      if (this.busy.has(thread.id)) return;
      const run = this.send(thread);
      this.inflight.add(run);
      void run.finally(() => this.inflight.delete(run));
    }, 1000 / this.ratePerSecond);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inflight]);
  }

  /** Waits until `count` more requests have been answered. */
  async answered(count: number, timeoutMs = 30_000): Promise<void> {
    const target = this.attempts.filter((a) => a.endedAt !== undefined).length + count;
    await waitFor(() => this.attempts.filter((a) => a.endedAt !== undefined).length >= target, {
      timeoutMs,
      what: `${count} more answers`,
    });
  }

  since(time: number): Attempt[] {
    return this.attempts.filter((a) => a.startedAt >= time && a.endedAt !== undefined);
  }

  private async send(thread: LoadThread): Promise<void> {
    this.busy.add(thread.id);
    const clientMessageId = randomUUID();
    const attempt: Attempt = {
      threadId: thread.id,
      userId: thread.userId,
      clientMessageId,
      messageId: messageIdFor(thread.id, thread.userId, clientMessageId),
      startedAt: Date.now(),
    };
    this.attempts.push(attempt);
    try {
      const res = await fetch(`${this.t.stack.httpUrl}/api/threads/${thread.id}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${thread.token}`, "content-type": "application/json" },
        body: JSON.stringify({ message: `load ${clientMessageId}`, client_message_id: clientMessageId }),
        signal: AbortSignal.timeout(10_000),
      });
      attempt.status = res.status;
      attempt.retryAfter = res.headers.get("retry-after");
      attempt.body = (await res.json()) as Record<string, unknown>;
    } catch {
      attempt.status = 0;
    } finally {
      attempt.endedAt = Date.now();
      this.busy.delete(thread.id);
    }
  }
}

const countsInPostgres = async (t: TestStack, ids: readonly string[]): Promise<Map<string, number>> => {
  const { rows } = await t.pg.query<{ id: string; n: number }>(
    "SELECT id::text, count(*)::int AS n FROM messages WHERE id = ANY($1::uuid[]) GROUP BY id",
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.n]));
};

const countsInClickHouse = async (t: TestStack, ids: readonly string[]): Promise<Map<string, number>> => {
  const counts = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 500) {
    const list = ids
      .slice(i, i + 500)
      .map((id) => `'${id}'`)
      .join(",");
    const result = await t.clickhouse.query({
      query: `SELECT id, count() AS n FROM messages FINAL WHERE id IN (${list}) GROUP BY id`,
      format: "JSONEachRow",
    });
    for (const row of await result.json<{ id: string; n: string }>()) counts.set(row.id, Number(row.n));
  }
  return counts;
};

/**
 * The ledger: waits (bounded) until every accepted message is in PostgreSQL and ClickHouse, then
 * checks each exactly once, nothing rejected anywhere, and seqs growing per thread.
 */
export const checkLedger = async (
  t: TestStack,
  attempts: readonly Attempt[],
  timeoutMs = 60_000,
): Promise<{ accepted: number; rejected: number }> => {
  const ok = accepted(attempts);
  const rejected = attempts.filter((a) => !ok.includes(a));
  const okIds = ok.map((a) => a.messageId);
  await waitFor(async () => (await countsInPostgres(t, okIds)).size === okIds.length, {
    timeoutMs,
    what: "every accepted message in PostgreSQL",
  });
  await waitFor(async () => (await countsInClickHouse(t, okIds)).size === okIds.length, {
    timeoutMs,
    what: "every accepted message in ClickHouse",
  });
  const [pg, ch] = [await countsInPostgres(t, okIds), await countsInClickHouse(t, okIds)];
  expect(okIds.filter((id) => pg.get(id) !== 1)).toEqual([]);
  expect(okIds.filter((id) => ch.get(id) !== 1)).toEqual([]);

  const rejectedIds = rejected.map((a) => a.messageId);
  if (rejectedIds.length > 0) {
    expect([...(await countsInPostgres(t, rejectedIds)).keys()]).toEqual([]);
    expect([...(await countsInClickHouse(t, rejectedIds)).keys()]).toEqual([]);
  }

  // One request in flight per thread: in the order they were sent, seqs only grow.
  for (const threadId of new Set(ok.map((a) => a.threadId))) {
    const seqs = ok
      .filter((a) => a.threadId === threadId)
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((a) => Number(a.body?.seq));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
  }
  return { accepted: ok.length, rejected: rejected.length };
};
