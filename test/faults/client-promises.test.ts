/**
 * The promises a chat client builds on, checked from the client's side against the running stack,
 * under concurrency and injected faults — a randomized run with a fixed, printed seed
 * (PROMISES_SEED=<n> repeats one):
 *
 *  - read-your-writes: a message answered 2xx is in its author's next history page and
 *    `GET /api/messages/{id}` (whenever the hot tier answered both the accept and the read);
 *  - one message per client_message_id: every try of a key — retries, duplicates in flight, after
 *    a Redis flush — returns the same id, seq and content, and at most one says `replayed: false`;
 *  - gap-free resume: every subscriber that follows the documented protocol (reconnecting at
 *    random, going offline while messages flow) ends with every accepted message of its thread,
 *    once by id, exactly as stored;
 *  - history is strictly ordered by seq; PostgreSQL and ClickHouse hold each message once.
 *
 * Faults: Redis answering slower than the command timeout (the accept path retries, or falls back
 * to PostgreSQL for the seq), the SQS endpoint slower than the send timeout (outcome unknown: the
 * synchronous commit takes over, the queued copy arrives later), and a Redis FLUSHALL mid-run.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "../../lambdas/core/model.ts";
import { mulberry32 } from "../../scripts/local-stack/seeded.ts";
import { freePort, PrivateRedis } from "../support/redis-server.ts";
import { ResumingClient } from "../support/resuming-client.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

const SEED = Number(process.env.PROMISES_SEED ?? Math.floor(Math.random() * 1_000_000_000));
const MESSAGES_PER_SENDER = 18;

/** A seeded generator, so a failing run can be repeated. */
const seeded = mulberry32;
const random = seeded(SEED);
const chance = (p: number): boolean => random() < p;
const between = (min: number, max: number): number => Math.floor(min + random() * (max - min));
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let redis: PrivateRedis;
let redisProxy: TcpProxy;
let sqsProxy: TcpProxy;
let t: TestStack;

beforeAll(async () => {
  redis = await PrivateRedis.start();
  redisProxy = await TcpProxy.start(await freePort(), redis.port);
  const sqsPort = await freePort();
  sqsProxy = await TcpProxy.start(await freePort(), sqsPort);
  t = await startTestStack({
    sqsPort,
    env: {
      REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
      // The handlers reach SQS through the proxy; the stack's own pollers do not.
      AWS_ENDPOINT_URL_SQS: sqsProxy.url,
      RATE_LIMIT_PER_SECOND: "0",
      RETRY_AFTER_SECONDS: "1",
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "SILENT",
      // Short Redis slowdowns should mostly be ridden out by retries, not by opening the circuit
      // for seconds (which sends every accept to PostgreSQL: that lane is tested too, but less).
      BREAKER_FAILURE_THRESHOLD: "20",
      BREAKER_HALF_OPEN_AFTER_MS: "500",
      PERSIST_BOUND_SECONDS: "20",
      HISTORY_CACHE_SIZE: "40",
      REPLAY_LIMIT: "30",
    },
  });
});

afterAll(async () => {
  // Also after a failure midway: clients that keep reconnecting would hold the stack open.
  await Promise.all(clients.map((c) => c.stop()));
  await t?.stop();
  await Promise.all([redisProxy?.cut(), sqsProxy?.cut()]);
  await redis?.stop();
});

interface Outcome {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly retryAfter: number;
}

interface Accepted {
  readonly message: Message;
  readonly threadId: string;
  /** The hot tier made it visible on the accept path (read-your-writes applies). */
  readonly cached: boolean;
  /** When the client began sending it (its first try). */
  readonly startedAt?: number;
}

/** When Redis was flushed (it loses the hot state: a documented read-your-writes window). */
const flushes: number[] = [];

let clients: ResumingClient[] = [];
const problems: string[] = [];
const problem = (text: string): void => {
  problems.push(text);
};

/** Every 2xx answer per key, to check that all tries of a key agree. */
const answersByKey = new Map<
  string,
  { message: Message; replayed: boolean; cache: string; startedAt: number; answeredAt: number }[]
>();
/** Keys some try of which got no answer (its outcome unknown to the client). */
const keysUnanswered = new Set<string>();
const keysWith503 = new Set<string>();
const accepted = new Map<string, Accepted>();
const counts = {
  sent: 0,
  retries: 0,
  duplicatesInFlight: 0,
  conflicts409: 0,
  unavailable503: 0,
  readChecks: 0,
  readChecksAcrossFlush: 0,
  connectsRefused: 0,
};

const record = (
  threadId: string,
  key: string,
  body: Record<string, unknown>,
  startedAt: number,
): Accepted => {
  const { status: _s, durability: _d, degraded: _g, cache, replayed, delivered: _v, ...rest } = body;
  const message = rest as unknown as Message;
  const cached = cache === "written";
  const list = answersByKey.get(key) ?? [];
  list.push({
    message,
    replayed: replayed === true,
    cache: String(cache),
    startedAt,
    answeredAt: Date.now(),
  });
  answersByKey.set(key, list);
  if (!accepted.has(message.id)) accepted.set(message.id, { message, threadId, cached });
  return { message, threadId, cached, startedAt };
};

/** One try over HTTP until it is answered 2xx: a 409 or 503 is retried after Retry-After. */
const postUntilAccepted = async (
  token: string,
  threadId: string,
  payload: Record<string, unknown>,
): Promise<Accepted> => {
  let body = payload;
  const startedAt = Date.now();
  for (let attempt = 0; attempt < 40; attempt++) {
    const outcome = await post(token, threadId, body);
    if (outcome.status === 201) {
      return record(threadId, String(outcome.body.client_message_id), outcome.body, startedAt);
    }
    const error = outcome.body.error as Record<string, unknown> | undefined;
    if (outcome.status === 409 && error?.code === "request_in_progress") counts.conflicts409++;
    else if (outcome.status === 503) {
      counts.unavailable503++;
      // The answer names the key to retry with (the server's, when the client gave none).
      const key = error?.client_message_id;
      if (typeof key !== "string")
        throw new Error(`503 without a client_message_id: ${JSON.stringify(outcome.body)}`);
      keysWith503.add(key);
      body = { ...body, client_message_id: key };
    } else {
      throw new Error(`unexpected ${outcome.status}: ${JSON.stringify(outcome.body)}`);
    }
    await pause(outcome.retryAfter * 1000);
  }
  throw new Error("no 2xx after 40 tries");
};

const post = async (token: string, threadId: string, body: Record<string, unknown>): Promise<Outcome> => {
  counts.sent++;
  const res = await fetch(`${t.stack.httpUrl}/api/threads/${threadId}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown>,
    retryAfter: Number(res.headers.get("retry-after") ?? "1"),
  };
};

/** Read-your-writes, checked right after a 2xx (only where the hot tier took part). */
const checkReadYourWrites = async (token: string, a: Accepted): Promise<void> => {
  if (!a.cached) return;
  const page = await t.request<{ messages: Message[]; epoch: string | null }>(
    "GET",
    `/api/threads/${a.threadId}/messages?limit=50`,
    { token },
  );
  const single = await t.request("GET", `/api/messages/${a.message.id}`, { token });
  // 503: the read could not reach the hot tier, and PostgreSQL does not have the message yet.
  if (page.status !== 200 || (single.status !== 200 && single.status !== 503)) {
    problem(`read after 2xx of ${a.message.id}: history ${page.status}, message ${single.status}`);
    return;
  }
  // Redis lost the thread's state since the send began: a message still on its way through SQS
  // is readable once the persist consumer stores it (docs/architecture.md, Read-your-writes).
  if (flushes.some((at) => at >= (a.startedAt ?? 0))) {
    counts.readChecksAcrossFlush++;
    return;
  }
  counts.readChecks++;
  if (page.body.epoch !== null && !page.body.messages.some((m) => m.id === a.message.id)) {
    problem(`read-your-writes: ${a.message.id} (seq ${a.message.seq}) missing from the next history page`);
  }
};

/** A user or agent sending over HTTP: new messages, retries, duplicates in flight. */
const httpSender = async (token: string, threadId: string, label: string, role?: string): Promise<void> => {
  for (let i = 0; i < MESSAGES_PER_SENDER; i++) {
    const withKey = chance(0.75);
    const payload = {
      message: `${label} #${i} ${randomUUID().slice(0, 6)}`,
      ...(withKey ? { client_message_id: `${label}-${i}-${randomUUID().slice(0, 8)}` } : {}),
      ...(role !== undefined ? { role } : {}),
    };
    if (withKey && chance(0.15)) {
      counts.duplicatesInFlight++;
      const [a] = await Promise.all([
        postUntilAccepted(token, threadId, payload),
        postUntilAccepted(token, threadId, payload),
      ]);
      if (role === undefined) await checkReadYourWrites(token, a);
    } else {
      const a = await postUntilAccepted(token, threadId, payload);
      if (role === undefined) await checkReadYourWrites(token, a);
      if (chance(0.3)) {
        // The answer was lost: the client tries again with the same key.
        counts.retries++;
        await postUntilAccepted(token, threadId, {
          ...payload,
          client_message_id: a.message.client_message_id,
        });
      }
    }
    await pause(between(0, 40));
  }
};

/** Opens a WebSocket connection as a client would: a refused connect (503) is tried again shortly. */
const connectWs = async (token: string) => {
  for (let attempt = 0; ; attempt++) {
    try {
      return await t.ws(token);
    } catch (error) {
      if (attempt >= 40) throw error;
      counts.connectsRefused++;
      await pause(250);
    }
  }
};

/** A user sending over its WebSocket connection (sendMessage), retrying errors by key. */
const wsSender = async (token: string, threadId: string, label: string): Promise<void> => {
  let ws = await connectWs(token);
  for (let i = 0; i < MESSAGES_PER_SENDER; i++) {
    let key = chance(0.7) ? `${label}-${i}-${randomUUID().slice(0, 8)}` : undefined;
    const text = `${label} #${i} ${randomUUID().slice(0, 6)}`;
    const startedAt = Date.now();
    for (let attempt = 0; ; attempt++) {
      if (attempt > 40) throw new Error("no ack after 40 tries");
      let frame: Record<string, unknown>;
      try {
        frame = await ws.request(
          {
            action: "sendMessage",
            threadId,
            message: text,
            ...(key !== undefined ? { client_message_id: key } : {}),
          },
          15_000,
        );
      } catch {
        // No answer: the try may have been accepted. Only a key makes a retry safe.
        if (key === undefined) throw new Error(`a keyless sendMessage got no answer (${text})`);
        keysUnanswered.add(key);
        ws = await connectWs(token);
        continue;
      }
      if (frame.type === "message.created") {
        const body = {
          ...(frame.message as Record<string, unknown>),
          replayed: frame.replayed,
          cache: frame.cache,
        };
        record(threadId, String((frame.message as Message).client_message_id), body, startedAt);
        break;
      }
      if (frame.code === "connection_unknown") {
        ws = await connectWs(token);
        continue;
      }
      if (frame.code === "service_unavailable") {
        counts.unavailable503++;
        // When the message may have been stored, the answer names the key to retry with.
        if (typeof frame.client_message_id === "string") {
          key = frame.client_message_id;
          keysWith503.add(key);
        }
      } else if (frame.code === "request_in_progress") counts.conflicts409++;
      else throw new Error(`unexpected error frame ${JSON.stringify(frame)}`);
      await pause(Number(frame.retry_after_seconds ?? 1) * 1000);
    }
    await pause(between(0, 40));
  }
};

/** Latency faults and one flush, at random moments, until told to stop. */
const injectFaults = async (running: () => boolean, log: string[]): Promise<void> => {
  let flushed = false;
  const started = Date.now();
  while (running()) {
    await pause(between(300, 900));
    if (!running()) break;
    const roll = random();
    if (!flushed && Date.now() - started > 3000 && roll < 0.3) {
      flushed = true;
      flushes.push(Date.now());
      await redis.flushAll();
      log.push("flush");
    } else if (roll < 0.65) {
      redisProxy.delayMs = between(130, 300);
      log.push(`redis+${redisProxy.delayMs}ms`);
      await pause(between(200, 600));
      redisProxy.delayMs = 0;
    } else {
      sqsProxy.delayMs = between(350, 800);
      log.push(`sqs+${sqsProxy.delayMs}ms`);
      await pause(between(200, 700));
      sqsProxy.delayMs = 0;
    }
  }
  if (!flushed) {
    await redis.flushAll();
    log.push("flush (late)");
  }
};

/** Subscribers drop their connection, or go offline for a while, at random moments. */
const churn = async (clients: readonly ResumingClient[], running: () => boolean): Promise<number> => {
  let events = 0;
  while (running()) {
    await pause(between(150, 600));
    const client = clients[between(0, clients.length)] as ResumingClient;
    if (chance(0.5)) client.drop();
    else client.away(between(200, 1200));
    events++;
  }
  return events;
};

describe(`client promises under faults (seed ${SEED})`, () => {
  it("hold for every client: read-your-writes, one message per key, gap-free resume, exactly once in every tier", async () => {
    console.log(`client-promises seed: ${SEED} (repeat with PROMISES_SEED=${SEED})`);
    const agent = await t.token("agent-bot", ["service"]);
    const owners = [`promise-a-${randomUUID().slice(0, 6)}`, `promise-b-${randomUUID().slice(0, 6)}`];
    const threads = await Promise.all(
      owners.map(async (owner) => {
        const token = await t.token(owner);
        return { owner, token, id: (await t.createThread(token)).id };
      }),
    );

    clients = threads.flatMap((th) =>
      [0, 1].map(
        () =>
          new ResumingClient({
            wsUrl: t.stack.wsUrl,
            httpUrl: t.stack.httpUrl,
            token: th.token,
            threadId: th.id,
          }),
      ),
    );
    await Promise.all(clients.map((c) => c.start()));

    let running = true;
    const faultLog: string[] = [];
    const faults = injectFaults(() => running, faultLog);
    const churning = churn(clients, () => running);
    const senders = threads.flatMap((th, i) => [
      httpSender(th.token, th.id, `http-${i}`),
      wsSender(th.token, th.id, `ws-${i}`),
      httpSender(agent, th.id, `agent-${i}`, "assistant"),
    ]);
    // Every sender finishes (or fails) before the faults stop and the checks begin.
    const sent = await Promise.allSettled(senders);
    running = false;
    await faults;
    redisProxy.delayMs = 0;
    sqsProxy.delayMs = 0;
    const failed = sent.find((r) => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    const churnEvents = await churning;

    // Every accepted message reaches PostgreSQL.
    const ids = [...accepted.keys()];
    await waitFor(
      async () => {
        const { rows } = await t.pg.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM messages WHERE id = ANY($1::uuid[])",
          [ids],
        );
        return rows[0]?.n === ids.length;
      },
      { timeoutMs: 60_000, what: "every accepted message in PostgreSQL" },
    );
    const { rows: stored } = await t.pg.query<{
      id: string;
      thread_id: string;
      seq: string;
      content: string;
    }>("SELECT id, thread_id, seq, content FROM messages WHERE thread_id = ANY($1::uuid[])", [
      threads.map((th) => th.id),
    ]);
    const storedById = new Map(stored.map((r) => [r.id, r]));
    // Nothing is stored that was not answered 2xx (every 503 was retried until accepted).
    expect(stored.length).toBe(ids.length);

    // One message per key: every 2xx of a key names the same message; at most one created it.
    let keysThroughPostgres = 0;
    let keysAcrossFlush = 0;
    for (const [key, answers] of answersByKey) {
      const first = answers[0] as (typeof answers)[number];
      const row = storedById.get(first.message.id);
      const tries = answers
        .map((a) => `${a.message.seq}/${a.replayed ? "replayed" : "created"}/${a.cache}`)
        .join(" ");
      if (answers.some((a) => a.message.id !== first.message.id)) problem(`key ${key}: two ids (${tries})`);
      // A try that could not reach Redis (`cache: "skipped"`) was answered by PostgreSQL alone,
      // while another try of the key may have been on its way through SQS: the documented window
      // (docs/architecture.md). Every other key's tries agree with what PostgreSQL kept.
      if (answers.some((a) => a.cache === "skipped")) {
        keysThroughPostgres++;
        continue;
      }
      // Redis lost the key between its tries while the original was still on its way through SQS
      // (not yet in PostgreSQL, where a retry then looks): the documented window of a Redis loss
      // (docs/reliability.md, Limits worth knowing).
      const from = Math.min(...answers.map((a) => a.startedAt));
      const to = Math.max(...answers.map((a) => a.answeredAt));
      if (answers.length > 1 && flushes.some((at) => at >= from && at <= to)) {
        keysAcrossFlush++;
        continue;
      }
      if (
        answers.some(
          (a) =>
            row !== undefined && (Number(row.seq) !== a.message.seq || row.content !== a.message.content),
        )
      ) {
        problem(`key ${key}: tries ${tries}, stored seq ${row?.seq}`);
      }
      const created = answers.filter((a) => !a.replayed).length;
      const unanswered = keysWith503.has(key) || keysUnanswered.has(key);
      if (created > 1 || (created === 0 && !unanswered)) {
        problem(`key ${key}: ${created} tries said replayed: false (${tries})`);
      }
    }

    // Gap-free resume: after reconnecting, each subscriber has every accepted message of its thread.
    await Promise.all(
      clients.map(async (client, i) => {
        client.drop();
        await client.synced();
        const threadId = threads[Math.floor(i / 2)]?.id as string;
        const expected = ids.filter((id) => accepted.get(id)?.threadId === threadId);
        await waitFor(() => expected.every((id) => client.messages.has(id)), {
          timeoutMs: 20_000,
          what: `subscriber ${i} has every message (missing: ${expected.filter((id) => !client.messages.has(id)).length})`,
        }).catch(() => {
          const missing = expected.filter((id) => !client.messages.has(id));
          problem(
            `subscriber ${i}: missing ${missing.length}: ${missing.map((id) => storedById.get(id)?.seq).join(", ")}`,
          );
        });
        for (const [id, m] of client.messages) {
          const row = storedById.get(id);
          if (row === undefined) problem(`subscriber ${i}: got ${id}, which is not stored`);
          else if (Number(row.seq) !== m.seq)
            problem(`subscriber ${i}: ${id} with seq ${m.seq}, stored ${row.seq}`);
        }
      }),
    );

    // History, paged backwards over HTTP, is strictly ordered and complete.
    for (const th of threads) {
      const seqs: number[] = [];
      const pages: string[] = [];
      let before: number | null = null;
      do {
        const query: string = before === null ? "limit=20" : `limit=20&before=${before}`;
        const page = await t.request<{ messages: Message[]; next_cursor: number | null }>(
          "GET",
          `/api/threads/${th.id}/messages?${query}`,
          { token: th.token },
        );
        expect(page.status).toBe(200);
        pages.push(
          `${query} → ${page.body.messages.length} from ${page.headers.get("x-served-from")}, next ${page.body.next_cursor}`,
        );
        seqs.unshift(...page.body.messages.map((m) => m.seq));
        before = page.body.next_cursor;
      } while (before !== null);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
      const expected = stored.filter((r) => r.thread_id === th.id).map((r) => Number(r.seq));
      const missing = expected.filter((seq) => !seqs.includes(seq));
      const extra = seqs.filter((seq) => !expected.includes(seq));
      if (missing.length > 0 || extra.length > 0) {
        problem(
          `history of ${th.id}: missing ${missing.join(", ")}; extra ${extra.join(", ")}; pages: ${pages.join(" | ")}`,
        );
      }
    }

    // ClickHouse holds each message once.
    await waitFor(
      async () => (await Promise.all(ids.map((id) => t.rowsInClickHouse(id)))).every((n) => n === 1),
      {
        timeoutMs: 60_000,
        what: "every message once in ClickHouse",
      },
    );

    console.log(
      JSON.stringify({
        seed: SEED,
        accepted: ids.length,
        ...counts,
        faults: faultLog,
        churnEvents,
        keysThroughPostgres,
        keysAcrossFlush,
        clients: clients.map((c) => c.stats),
      }),
    );
    await Promise.all(clients.map((c) => c.stop()));
    expect(problems).toEqual([]);
  });
});
