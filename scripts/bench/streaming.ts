/**
 * The streaming scenario of `npm run bench`: many assistant replies streaming at once, each with one
 * WebSocket subscriber, on the same three stack processes as the accept ladder. Phases, each driven
 * in the streaming worker (streaming-worker.ts), with PostgreSQL and Redis read between them:
 *
 *   setup     one thread per stream (created by its user), the user's subscriber on it;
 *   open      the agent opens every reply (`state: "streaming"`): one PostgreSQL row each;
 *   stream    every stream appends one delta per 1/rate s for the duration (open model);
 *   complete  every reply completes with `usage`; its final form replaces the opened row;
 *   ledger    every completed message in PostgreSQL (complete, full content) and in ClickHouse
 *             exactly once with the full content, within a deadline;
 *   probe     one more stream filled until the API refuses it: the largest stream Redis holds.
 */
import os from "node:os";
import type { ClickHouseClient } from "@clickhouse/client";
import { Redis } from "ioredis";
import type pg from "pg";
import { RedisKeys } from "../../lambdas/adapters/redis/keys.ts";
import { parseConfig } from "../../lambdas/runtime/config.ts";
import { LOCAL_DEFAULTS } from "../local-stack/defaults.ts";
import { type BenchStack, call, type Stats, startBenchStack } from "./processes.ts";
import { type Summary, summarize } from "./stats.ts";
import type {
  CompleteResult,
  OpenResult,
  ProbeResult,
  StreamRequest,
  StreamResult,
} from "./streaming-worker.ts";

export interface StreamingPlan {
  readonly streams: number;
  /** Deltas per second per stream. */
  readonly perStreamRate: number;
  readonly durationMs: number;
}

export const STREAMING_PLANS: Readonly<Record<"full" | "quick", StreamingPlan>> = {
  full: { streams: 100, perStreamRate: 20, durationMs: 30_000 },
  quick: { streams: 20, perStreamRate: 20, durationMs: 5000 },
};

/** PostgreSQL's shared statistics lag a backend's writes by up to PGSTAT_IDLE_INTERVAL (10 s). */
const PG_STATS_SETTLE_MS = 11_000;
const LEDGER_TIMEOUT_MS = 120_000;

export interface RowCounts {
  /** Rows inserted, updated and deleted in every table of the stack's database. */
  readonly rows: number;
  /** The same per table (only tables with writes, in a difference). */
  readonly byTable: Record<string, number>;
  readonly messagesInserted: number;
  readonly messagesUpdated: number;
  readonly messagesDeleted: number;
  /** Transactions committed or rolled back in the stack's database (reads included). */
  readonly transactions: number;
}

/** Redis bytes (MEMORY USAGE) of a stream's keys. */
export interface StreamKeyBytes {
  /** `…:sm:<id>`: counters, the opened message and, once ended, the final one. */
  readonly state: number;
  /** `…:sc:<id>`: the deltas joined. */
  readonly content: number;
  /** `…:streams`: the thread's set of open streams (gone once none is open). */
  readonly openSet: number;
  /** `{m:<id>}`: the lookup by message id (opened, then final message). */
  readonly lookup: number;
  readonly total: number;
}

export interface StreamingReport {
  readonly date: string;
  /** A short or custom variant (a smoke run or a dig into one figure, not for the record). */
  readonly quick: boolean;
  readonly plan: StreamingPlan & { readonly offeredDeltasPerSecond: number };
  /** The stream limits and TTL the API ran with. */
  readonly config: {
    readonly maxBytes: number;
    readonly maxDeltas: number;
    readonly maxDeltaBytes: number;
    readonly idleTimeoutSeconds: number;
    readonly ttlSeconds: number;
  };
  readonly open: {
    readonly opened: number;
    readonly failed: number;
    readonly latency: Summary;
    readonly createdFrames: number;
  };
  readonly deltas: {
    readonly scheduled: number;
    readonly sent: number;
    readonly accepted: number;
    readonly failed: number;
    readonly skipped: number;
    readonly retries: number;
    readonly duplicateAnswers: number;
    readonly statuses: Record<string, number>;
    /** Accepted deltas per second of the phase (first due → last answer). */
    readonly achievedPerSecond: number;
    readonly phaseSeconds: number;
    /** Due → 202. */
    readonly append: Summary;
    /** Append sent → frame at the subscriber. */
    readonly delivery: Summary;
    /** The same, deltas accepted at their first send only (no 503 and Retry-After wait). */
    readonly deliveryFirstTry: Summary;
    /** Due → frame at the subscriber. */
    readonly dueToFrame: Summary;
    /** Due → sent: timer lateness plus the wait for the stream's previous append. */
    readonly sendDelay: Summary;
    readonly received: number;
    readonly missing: number;
    readonly streamsMissing: number;
    readonly mostMissingInAStream: number;
    readonly socketsClosed: Record<string, number>;
    readonly duplicates: number;
    readonly outOfOrder: number;
    readonly unexpected: number;
  };
  /** Per second of the delta phase. */
  readonly timeline: {
    readonly second: number;
    readonly deliveryP50: number;
    readonly deliveryP99: number;
    readonly appendP99: number;
    /** Accepted deltas due in this second whose frame never reached the subscriber. */
    readonly missing: number;
  }[];
  readonly postgres: {
    /** Between every opened row being in PostgreSQL and the completes (the deltas only). */
    readonly deltaPhase: RowCounts & { readonly apiStatements: number; readonly consumerStatements: number };
    readonly writesPerDelta: number;
    /** From before the opens to every final row in PostgreSQL. */
    readonly scenario: RowCounts;
    /** Rows written to messages per stream over the scenario (an open and a final: 2). */
    readonly messagesRowsPerStream: number;
  };
  readonly redis: {
    /** INFO used_memory (bytes): before the opens, all open, all open with their content, all ended. */
    readonly usedMemory: {
      readonly before: number;
      readonly opened: number;
      readonly streaming: number;
      readonly completed: number;
    };
    /** (streaming − before) / streams. */
    readonly perOpenStreamBytes: number;
    /** Mean MEMORY USAGE of one open stream's keys, with its content. */
    readonly keysPerOpenStream: StreamKeyBytes;
    /** MEMORY USAGE of the first stream's keys while open. */
    readonly oneOpenStream: StreamKeyBytes;
    /** Mean MEMORY USAGE of one ended stream's keys (kept for the TTL). */
    readonly keysPerEndedStream: StreamKeyBytes;
    readonly contentBytesPerStream: number;
    /** A stream filled to the limit: what it holds and what Redis spends on it. */
    readonly probe: {
      readonly appended: number;
      readonly bytes: number;
      readonly refusedWith: string | null;
      readonly keys: StreamKeyBytes;
    };
  };
  readonly complete: {
    readonly completed: number;
    readonly failed: number;
    readonly latency: Summary;
    readonly answerMismatches: number;
    readonly completedFrames: number;
    readonly completedFrameMismatches: number;
  };
  readonly ledger: {
    readonly completed: number;
    /** Rows with state complete and content = the deltas joined. */
    readonly inPostgres: number;
    readonly postgresMismatches: number;
    /** Exactly once as FINAL sees it, state complete, content = the deltas joined. */
    readonly inClickHouse: number;
    readonly clickHouseMismatches: number;
    readonly clickHouseDuplicates: number;
    /** Rows before merges (without FINAL): only final forms are archived, so one per message. */
    readonly clickHouseRawRows: number;
    /** Seconds from the completes to the last row in each. */
    readonly postgresSeconds: number;
    readonly clickHouseSeconds: number;
  };
  readonly cost: {
    /** CPU per delta (ms) in each process during the delta phase. */
    readonly cpuPerDeltaMs: Record<string, number>;
    readonly loopDelayP99Ms: Record<string, number>;
    /** Both cores, every process on the machine, during the delta phase. */
    readonly machineBusyPercent: number;
    /** EVALSHA calls per delta and Redis's time per call (µs, INFO commandstats). */
    readonly redisScriptCallsPerDelta: number;
    readonly redisUsecPerScriptCall: number;
  };
}

export interface StreamingResources {
  readonly databaseUrl: string;
  readonly database: string;
  readonly clickhouseDatabase: string;
  /** Connected to the stack's database (pg_stat_user_tables is per database). */
  readonly benchPool: pg.Pool;
  /** Connected to any database (pg_stat_database). */
  readonly pgPool: pg.Pool;
  readonly clickhouse: ClickHouseClient;
}

const prof = (flag: string | undefined) => (flag ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round2 = (x: number): number => Math.round(x * 100) / 100;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

const rowCounts = async (r: StreamingResources): Promise<RowCounts> => {
  const { rows } = await r.benchPool.query<{ relname: string; ins: string; upd: string; del: string }>(
    "SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_del AS del FROM pg_stat_user_tables",
  );
  const { rows: tx } = await r.pgPool.query<{ n: string }>(
    "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
    [r.database],
  );
  const messages = rows.find((row) => row.relname === "messages");
  return {
    rows: rows.reduce((a, row) => a + Number(row.ins) + Number(row.upd) + Number(row.del), 0),
    byTable: Object.fromEntries(
      rows.map((row) => [row.relname, Number(row.ins) + Number(row.upd) + Number(row.del)]),
    ),
    messagesInserted: Number(messages?.ins ?? 0),
    messagesUpdated: Number(messages?.upd ?? 0),
    messagesDeleted: Number(messages?.del ?? 0),
    transactions: Number(tx[0]?.n ?? 0),
  };
};

const minus = (a: RowCounts, b: RowCounts): RowCounts => ({
  rows: a.rows - b.rows,
  byTable: Object.fromEntries(
    Object.entries(a.byTable)
      .map(([table, n]) => [table, n - (b.byTable[table] ?? 0)] as const)
      .filter(([, n]) => n !== 0),
  ),
  messagesInserted: a.messagesInserted - b.messagesInserted,
  messagesUpdated: a.messagesUpdated - b.messagesUpdated,
  messagesDeleted: a.messagesDeleted - b.messagesDeleted,
  transactions: a.transactions - b.transactions,
});

/** Polls until `ready` holds for the counts (or the deadline passes); answers the last counts. */
const countsWhen = async (
  r: StreamingResources,
  ready: (c: RowCounts) => boolean,
  timeoutMs = 20_000,
): Promise<RowCounts> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await rowCounts(r);
    if (ready(counts) || Date.now() > deadline) return counts;
    await sleep(250);
  }
};

const info = async (redis: Redis, section: string): Promise<Record<string, string>> =>
  Object.fromEntries(
    (await redis.info(section))
      .split("\r\n")
      .filter((l) => l.includes(":"))
      .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]),
  );

const usedMemory = async (redis: Redis): Promise<number> => Number((await info(redis, "memory")).used_memory);

const redisCpu = async (redis: Redis) => {
  const cpu = await info(redis, "cpu");
  const stats = await info(redis, "commandstats");
  const evalsha = Object.fromEntries(
    (stats.cmdstat_evalsha ?? "").split(",").map((kv) => kv.split("=") as [string, string]),
  );
  return {
    cpuMs: (Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user)) * 1000,
    evalshaCalls: Number(evalsha.calls ?? 0),
    evalshaUsec: Number(evalsha.usec ?? 0),
  };
};

const keyBytes = async (
  redis: Redis,
  keys: RedisKeys,
  threadId: string,
  messageId: string,
): Promise<StreamKeyBytes> => {
  const usage = async (key: string) =>
    Number((await redis.call("MEMORY", "USAGE", key, "SAMPLES", "0")) ?? 0);
  const [state, content, openSet, lookup] = await Promise.all([
    usage(keys.stream(threadId, messageId)),
    usage(keys.streamContent(threadId, messageId)),
    usage(keys.threadStreams(threadId)),
    usage(keys.message(messageId)),
  ]);
  return { state, content, openSet, lookup, total: state + content + openSet + lookup };
};

const meanKeyBytes = (all: readonly StreamKeyBytes[]): StreamKeyBytes => {
  const mean = (pick: (k: StreamKeyBytes) => number) =>
    Math.round(all.reduce((a, k) => a + pick(k), 0) / Math.max(1, all.length));
  return {
    state: mean((k) => k.state),
    content: mean((k) => k.content),
    openSet: mean((k) => k.openSet),
    lookup: mean((k) => k.lookup),
    total: mean((k) => k.total),
  };
};

const cpuTimes = () =>
  os.cpus().reduce(
    (acc, c) => {
      const busy = c.times.user + c.times.nice + c.times.sys + c.times.irq;
      return { busy: acc.busy + busy, total: acc.total + busy + c.times.idle };
    },
    { busy: 0, total: 0 },
  );

const sqlIn = (ids: readonly string[]) => ids.map((id) => `'${id}'`).join(",");

/** Waits until every completed message is in PostgreSQL with state complete and its full content. */
const postgresLedger = async (r: StreamingResources, completed: CompleteResult["completed"]) => {
  const expected = new Map(completed.map((c) => [c.messageId, c.content]));
  const deadline = Date.now() + LEDGER_TIMEOUT_MS;
  for (;;) {
    const { rows } = await r.benchPool.query<{ id: string; state: string; content: string }>(
      "SELECT id, state, content FROM messages WHERE id = ANY($1::uuid[])",
      [[...expected.keys()]],
    );
    const complete = rows.filter((row) => row.state === "complete");
    const matching = complete.filter((row) => row.content === expected.get(row.id)).length;
    if (complete.length === expected.size || Date.now() > deadline)
      return { inPostgres: matching, postgresMismatches: complete.length - matching };
    await sleep(250);
  }
};

/** Waits until every completed message is in ClickHouse (as FINAL sees it) with its full content. */
const clickHouseLedger = async (r: StreamingResources, completed: CompleteResult["completed"]) => {
  const expected = new Map(completed.map((c) => [c.messageId, c.content]));
  const ids = sqlIn([...expected.keys()]);
  const deadline = Date.now() + LEDGER_TIMEOUT_MS;
  for (;;) {
    const result = await r.clickhouse.query({
      query: `SELECT id, count() AS n, any(state) AS state, any(content) AS content
                FROM messages FINAL WHERE id IN (${ids}) GROUP BY id`,
      format: "JSONEachRow",
    });
    const rows = await result.json<{ id: string; n: string; state: string; content: string }>();
    if (rows.length === expected.size || Date.now() > deadline) {
      const once = rows.filter((row) => Number(row.n) === 1);
      const matching = once.filter(
        (row) => row.state === "complete" && row.content === expected.get(row.id),
      ).length;
      const raw = await r.clickhouse.query({
        query: `SELECT count() AS n FROM messages WHERE id IN (${ids})`,
        format: "JSONEachRow",
      });
      const [counted] = await raw.json<{ n: string }>();
      return {
        inClickHouse: matching,
        clickHouseMismatches: once.length - matching,
        clickHouseDuplicates: rows.length - once.length,
        clickHouseRawRows: Number(counted?.n ?? 0),
      };
    }
    await sleep(500);
  }
};

const cpuDelta = (before: Record<string, Stats>, after: Record<string, Stats>, name: string, per: number) =>
  round3(((after[name]?.cpuMs ?? 0) - (before[name]?.cpuMs ?? 0)) / Math.max(1, per));

export const runStreaming = async (
  resources: StreamingResources,
  plan: StreamingPlan,
  quick: boolean,
): Promise<StreamingReport> => {
  const started = new Date();
  const offered = plan.streams * plan.perStreamRate;
  console.log(
    `\nstreaming: ${plan.streams} streams × ${plan.perStreamRate} deltas/s (${offered} deltas/s) for ` +
      `${plan.durationMs / 1000} s, one subscriber each`,
  );
  const bench: BenchStack = await startBenchStack({
    mode: "queued",
    databaseUrl: resources.databaseUrl,
    clickhouseDatabase: resources.clickhouseDatabase,
    queuePrefix: "bench-streaming",
    threads: plan.streams,
    subscribedThreads: plan.streams,
    loadWorker: "streaming-worker.ts",
    // BENCH_LOG_LEVEL=WARN shows the handlers' warnings (failed deliveries, say); the bench logs errors only.
    ...(process.env.BENCH_LOG_LEVEL ? { env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL } } : {}),
    // As in profile-run.ts: PROF_API=1 (PROF_QUEUES, PROF_SQS) writes a V8 CPU profile to /tmp/prof.
    execArgv: {
      api: prof(process.env.PROF_API),
      consumers: prof(process.env.PROF_QUEUES),
      sqs: prof(process.env.PROF_SQS),
    },
  });
  const redis = new Redis(process.env.REDIS_URL ?? (LOCAL_DEFAULTS.REDIS_URL as string), {
    lazyConnect: true,
  });
  const keys = new RedisKeys(bench.redisKeyPrefix);
  try {
    await redis.connect();
    // The limits the API runs with (the queue URLs are the stack's own; any value parses).
    const config = parseConfig({
      ...LOCAL_DEFAULTS,
      PERSIST_QUEUE_URL: "local",
      ANALYTICS_QUEUE_URL: "local",
      ...process.env,
      ...bench.env,
    });
    // ---- open (once the statistics hold the setup's writes: the threads)
    await sleep(PG_STATS_SETTLE_MS);
    const countsBefore = await rowCounts(resources);
    const memoryBefore = await usedMemory(redis);
    const opened = await call<OpenResult>(bench.load, { type: "open" }, "opened");
    const openIds = opened.streams.map((s) => s.messageId);
    process.stdout.write(`  opened ${opened.streams.length} (${opened.failed} failed) … `);
    const openDeadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await resources.benchPool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM messages WHERE id = ANY($1::uuid[])",
        [openIds],
      );
      if ((rows[0]?.n ?? 0) === openIds.length) break;
      if (Date.now() > openDeadline) throw new Error("the opened replies did not all reach PostgreSQL");
      await sleep(250);
    }
    const countsOpened = await countsWhen(
      resources,
      (c) => c.messagesInserted - countsBefore.messagesInserted >= openIds.length,
    );
    const memoryOpened = await usedMemory(redis);
    console.log("in PostgreSQL");

    // ---- stream
    process.stdout.write("  streaming … ");
    const statsBefore = await bench.stats();
    const redisBefore = await redisCpu(redis);
    const cpuBefore = cpuTimes();
    const streamed = await call<StreamResult>(
      bench.load,
      {
        type: "stream",
        perStreamRate: plan.perStreamRate,
        durationMs: plan.durationMs,
      } satisfies StreamRequest,
      "streamed",
    );
    const streamedAt = Date.now();
    const cpuAfter = cpuTimes();
    const statsAfter = await bench.stats();
    const redisAfter = await redisCpu(redis);
    const memoryStreaming = await usedMemory(redis);
    const openKeys = await Promise.all(
      opened.streams.map((s) => keyBytes(redis, keys, s.threadId, s.messageId)),
    );
    const delivery = summarize(streamed.deliveryLatencies);
    const append = summarize(streamed.appendLatencies);
    console.log(
      `${streamed.accepted}/${streamed.scheduled} deltas accepted in ${streamed.phaseSeconds.toFixed(1)} s, ` +
        `${streamed.failed} failed, ${streamed.retries} retries; append p50 ` +
        `${append.p50} p99 ${append.p99} ms; delta → subscriber p50 ${delivery.p50} p99 ${delivery.p99} ` +
        `max ${delivery.max} ms; received ${streamed.received}, missing ${streamed.missing} (in ${streamed.streamsMissing} streams), ` +
        `duplicates ${streamed.duplicates}, out of order ${streamed.outOfOrder}`,
    );
    // Every write of the delta phase is in the statistics once they settle (before any complete).
    await sleep(Math.max(0, streamedAt + PG_STATS_SETTLE_MS - Date.now()));
    const countsStreamed = await rowCounts(resources);
    const apiStatements = statsAfter.api.pgQueries - statsBefore.api.pgQueries;
    const consumerStatements = statsAfter.consumers.pgQueries - statsBefore.consumers.pgQueries;

    // ---- complete
    process.stdout.write("  completing … ");
    const completed = await call<CompleteResult>(bench.load, { type: "complete" }, "completed");
    const completedAt = Date.now();
    const pgLedger = await postgresLedger(resources, completed.completed);
    const postgresSeconds = (Date.now() - completedAt) / 1000;
    const chLedger = await clickHouseLedger(resources, completed.completed);
    const clickHouseSeconds = (Date.now() - completedAt) / 1000;
    const memoryCompleted = await usedMemory(redis);
    const endedKeys = await Promise.all(
      completed.completed.map((c) => keyBytes(redis, keys, c.threadId, c.messageId)),
    );
    await countsWhen(
      resources,
      (c) => c.messagesUpdated - countsStreamed.messagesUpdated >= completed.completed.length,
    );
    await sleep(Math.max(0, completedAt + PG_STATS_SETTLE_MS - Date.now()));
    const countsAfter = await rowCounts(resources);
    console.log(
      `${completed.completed.length} completed; PostgreSQL ${pgLedger.inPostgres}, ClickHouse ` +
        `${chLedger.inClickHouse} (${clickHouseSeconds.toFixed(1)} s)`,
    );

    // ---- probe: a stream filled to the limit (after the counts: its open is a PostgreSQL write)
    const probed = await call<ProbeResult>(
      bench.load,
      {
        type: "probe",
        deltaBytes: config.STREAM_MAX_DELTA_BYTES,
        maxAppends: Math.ceil(config.STREAM_MAX_BYTES / config.STREAM_MAX_DELTA_BYTES) + 2,
      },
      "probed",
    );
    const probeKeys = await keyBytes(redis, keys, probed.threadId, probed.messageId);

    const deltaPhase = minus(countsStreamed, countsOpened);
    const scenario = minus(countsAfter, countsBefore);
    const machine = cpuAfter.total - cpuBefore.total;
    const scheduled = streamed.scheduled;
    const scriptCalls = redisAfter.evalshaCalls - redisBefore.evalshaCalls;
    return {
      date: started.toISOString(),
      quick,
      plan: { ...plan, offeredDeltasPerSecond: offered },
      config: {
        maxBytes: config.STREAM_MAX_BYTES,
        maxDeltas: config.STREAM_MAX_DELTAS,
        maxDeltaBytes: config.STREAM_MAX_DELTA_BYTES,
        idleTimeoutSeconds: config.STREAM_IDLE_TIMEOUT_SECONDS,
        ttlSeconds: config.CACHE_TTL_SECONDS,
      },
      open: {
        opened: opened.streams.length,
        failed: opened.failed,
        latency: summarize(opened.openLatencies),
        createdFrames: opened.createdFrames,
      },
      deltas: {
        scheduled,
        sent: streamed.sent,
        accepted: streamed.accepted,
        failed: streamed.failed,
        skipped: streamed.skipped,
        retries: streamed.retries,
        duplicateAnswers: streamed.duplicateAnswers,
        statuses: streamed.statuses,
        achievedPerSecond: Math.round(streamed.accepted / streamed.phaseSeconds),
        phaseSeconds: round2(streamed.phaseSeconds),
        append,
        delivery,
        deliveryFirstTry: summarize(streamed.firstTryDeliveryLatencies),
        dueToFrame: summarize(streamed.dueToFrameLatencies),
        sendDelay: summarize(streamed.sendDelays),
        received: streamed.received,
        missing: streamed.missing,
        streamsMissing: streamed.streamsMissing,
        mostMissingInAStream: streamed.mostMissingInAStream,
        socketsClosed: streamed.socketsClosed,
        duplicates: streamed.duplicates,
        outOfOrder: streamed.outOfOrder,
        unexpected: streamed.unexpected,
      },
      timeline: streamed.timeline.map((t, second) => {
        const d = summarize(t.delivery);
        return {
          second,
          deliveryP50: d.p50,
          deliveryP99: d.p99,
          appendP99: summarize(t.append).p99,
          missing: t.missing,
        };
      }),
      postgres: {
        deltaPhase: { ...deltaPhase, apiStatements, consumerStatements },
        writesPerDelta: streamed.accepted === 0 ? Number.NaN : deltaPhase.rows / streamed.accepted,
        scenario,
        messagesRowsPerStream: round2(
          (scenario.messagesInserted + scenario.messagesUpdated + scenario.messagesDeleted) /
            Math.max(1, opened.streams.length),
        ),
      },
      redis: {
        usedMemory: {
          before: memoryBefore,
          opened: memoryOpened,
          streaming: memoryStreaming,
          completed: memoryCompleted,
        },
        perOpenStreamBytes: Math.round((memoryStreaming - memoryBefore) / Math.max(1, opened.streams.length)),
        keysPerOpenStream: meanKeyBytes(openKeys),
        oneOpenStream: openKeys[0] ?? meanKeyBytes([]),
        keysPerEndedStream: meanKeyBytes(endedKeys),
        contentBytesPerStream: Math.round(streamed.contentBytes.total / Math.max(1, opened.streams.length)),
        probe: {
          appended: probed.appended,
          bytes: probed.bytes,
          refusedWith: probed.refusedWith,
          keys: probeKeys,
        },
      },
      complete: {
        completed: completed.completed.length,
        failed: completed.failed,
        latency: summarize(completed.completeLatencies),
        answerMismatches: completed.answerMismatches,
        completedFrames: completed.completedFrames,
        completedFrameMismatches: completed.completedFrameMismatches,
      },
      ledger: {
        completed: completed.completed.length,
        ...pgLedger,
        ...chLedger,
        postgresSeconds: round2(postgresSeconds),
        clickHouseSeconds: round2(clickHouseSeconds),
      },
      cost: {
        cpuPerDeltaMs: {
          api: cpuDelta(statsBefore, statsAfter, "api", scheduled),
          sqs: cpuDelta(statsBefore, statsAfter, "sqs", scheduled),
          consumers: cpuDelta(statsBefore, statsAfter, "consumers", scheduled),
          loadGenerator: round3(streamed.cpuPerDeltaMs),
          redis: round3((redisAfter.cpuMs - redisBefore.cpuMs) / Math.max(1, scheduled)),
        },
        loopDelayP99Ms: {
          api: round2(statsAfter.api.loopDelay.p99),
          sqs: round2(statsAfter.sqs.loopDelay.p99),
          consumers: round2(statsAfter.consumers.loopDelay.p99),
          loadGenerator: round2(streamed.loopDelay.p99),
        },
        machineBusyPercent: round2(
          machine === 0 ? Number.NaN : ((cpuAfter.busy - cpuBefore.busy) / machine) * 100,
        ),
        redisScriptCallsPerDelta: round3(scriptCalls / Math.max(1, scheduled)),
        redisUsecPerScriptCall: round2(
          scriptCalls === 0 ? Number.NaN : (redisAfter.evalshaUsec - redisBefore.evalshaUsec) / scriptCalls,
        ),
      },
    };
  } finally {
    redis.disconnect();
    await bench.stop();
  }
};
