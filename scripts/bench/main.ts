/**
 * `npm run bench`: the three-tier accept path against the synchronous baseline (ACCEPT_MODE=sync),
 * side by side in one run on one machine, with everything local. Writes bench-results/latest.json
 * and bench-results/report.md (with SVG charts), and prints each target with pass/fail.
 *
 * The full run ends with the streaming scenario (scripts/bench/streaming.ts): 100 replies streaming
 * at once, 20 deltas per second each, one WebSocket subscriber each.
 *
 *   npm run bench              the full run (~10 minutes)
 *   npm run bench -- --quick   a short run with fewer, shorter steps (~2 minutes)
 *   npm run bench -- --streaming [--quick]   the streaming scenario alone (`npm run bench:streaming`);
 *                              its results replace the streaming part of latest.json and report.md
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { GetQueueAttributesCommand, ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import pg from "pg";
import { createClickHouseClient } from "../../lambdas/adapters/clickhouse/client.ts";
import { ensureClickHouse, ensurePostgres } from "../local-stack/schema.ts";
import { measureBundles } from "./bundles.ts";
import { PROFILES, type ProfileName, type ProxiedTier } from "./latency-profiles.ts";
import type { AcceptedMessage, StepRequest, StepResult, WriteOutcome } from "./load-worker.ts";
import { type BenchStack, call, startBenchStack } from "./processes.ts";
import { type BenchResult, renderReport } from "./report.ts";
import { type Summary, summarize } from "./stats.ts";
import { runStreaming, STREAMING_PLANS } from "./streaming.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string", default: "bench-results" },
    /** Only these offered rates (comma-separated), e.g. to compare two builds at 300 and 1,000 msg/s. */
    rates: { type: "string" },
    /** Only these modes (comma-separated: queued, sync). */
    modes: { type: "string", default: "queued,sync" },
    /** Only the ladder: no PostgreSQL-slowdown comparison, no bundles, no streaming (A/B runs). */
    "ladder-only": { type: "boolean", default: false },
    /** Only the streaming scenario, merged into the results already in --out. */
    streaming: { type: "boolean", default: false },
    /** The streaming scenario with this many streams / this long a delta phase (to dig into a figure). */
    streams: { type: "string" },
    "stream-seconds": { type: "string" },
    /** Latency profile(s): local (every tier direct), aws (each tier behind a latency proxy), or both. */
    profile: { type: "string" },
    /** Skip the failover scenarios (PostgreSQL and Redis unreachable for 30 s). */
    "no-failover": { type: "boolean", default: false },
    /** Only the failover scenarios. */
    failover: { type: "boolean", default: false },
  },
});

const PLAN = args.quick
  ? {
      queued: [100, 1000],
      sync: [100, 1000],
      aws: [100, 500],
      compareRate: 100,
      compareDurationMs: 4000,
      warmupMs: 1000,
      durationMs: 4000,
      readRate: 50,
      failover: { rate: 200, beforeMs: 3000, outageMs: 10_000, afterMs: 5000 },
    }
  : {
      // Past the knee, up to 3,000 msg/s or until the mode collapses (the ladder stops there).
      queued: [50, 100, 200, 300, 500, 1000, 1500, 2000, 3000],
      sync: [50, 100, 200, 300, 500, 1000, 1500, 2000, 3000],
      // The proxies forward every byte in one more process: past ~500 msg/s the run measures them.
      aws: [50, 100, 200, 300, 500],
      compareRate: 100,
      // Longer: a p99 from 2,000 samples, steady enough to compare with and without the slowdown.
      compareDurationMs: 20_000,
      warmupMs: 2000,
      durationMs: 10_000,
      readRate: 50,
      // An Aurora failover: the database unreachable for 30 s, at 200 msg/s.
      failover: { rate: 200, beforeMs: 10_000, outageMs: 30_000, afterMs: 20_000 },
    };
/** The accept p99 a mode must hold at a rate to count as holding it (above this VM's noise). */
export const CAPACITY_P99_MS = 50;
/** A step whose accept p99 passes this (or that fails 5% of its requests) ends the mode's ladder. */
const COLLAPSE_P99_MS = 1000;
/** How long a step waits for its accepted messages to reach PostgreSQL and ClickHouse. */
const PERSIST_WAIT_MS = 240_000;
/** How long a client in the failover scenario retries a try before giving up (ms after it was due). */
const FAILOVER_RETRY_MS = 60_000;
const PROFILES_RUN: ProfileName[] =
  args.profile === undefined
    ? args.quick
      ? ["local"]
      : ["local", "aws"]
    : args.profile === "both"
      ? ["local", "aws"]
      : [args.profile as ProfileName];
if (!PROFILES_RUN.every((p) => p in PROFILES)) throw new Error(`--profile: local, aws or both`);
const ONLY_RATES = args.rates?.split(",").map(Number);
const MODES = new Set(args.modes.split(","));
const THREADS = 200;
const SUBSCRIBED = 50;
const SLOWDOWN_MS = 20;

const baseUrl = new URL(process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/chat_bench");
const DATABASE_URL = baseUrl.toString();
const DATABASE = baseUrl.pathname.slice(1);
const CLICKHOUSE = {
  url: process.env.CLICKHOUSE_URL ?? "http://127.0.0.1:8123",
  username: "default",
  password: "",
  database: "chat_bench",
};

export interface StepReport {
  readonly rate: number;
  readonly slowedPostgresMs: number;
  readonly achievedPerSecond: number;
  readonly failed: number;
  /** Refused with 503 overloaded at admission, and how fast that answer came (due → 503). */
  readonly shed: number;
  readonly shedLatency: Summary;
  readonly accept: Summary;
  readonly serverTiming: Record<string, Summary>;
  readonly persistLag: Summary;
  readonly analyticsLag: Summary;
  readonly delivery: Summary;
  readonly deliveryAfterAnswer: Summary;
  readonly reads: Summary;
  readonly readHitRate: number;
  readonly postgresRoundTripsPerMessage: number;
  /** Statements the API process sent to PostgreSQL per accepted message (accepts and reads). */
  readonly apiPostgresQueriesPerMessage: number;
  readonly rowsPerClickHouseInsert: number;
  /** How late the generator sent requests (its own share of the latencies). */
  readonly sendLateness: Summary;
  /** CPU per offered message in each process (ms; consumers include catching up after the step). */
  readonly cpuPerMessageMs: Record<string, number>;
  /** CPU of the API process per accepted message (ms). */
  readonly apiCpuPerAcceptedMs: number;
  readonly loopDelayP99Ms: Record<string, number>;
}

export interface ModeReport {
  readonly mode: "queued" | "sync";
  readonly profile: ProfileName;
  readonly steps: StepReport[];
  readonly slowed: StepReport[];
  /**
   * Highest rate of the ladder held: accept p99 ≤ CAPACITY_P99_MS, at least 95% of the offered
   * rate accepted, under 1% refused.
   */
  readonly capacity: number;
  /** The first rate at which the mode collapsed (the ladder stopped there), if it did. */
  readonly collapsedAt: number | null;
  readonly ledger: { accepted: number; inPostgres: number; inClickHouse: number };
}

export interface FailoverReport {
  readonly mode: "queued" | "sync";
  readonly profile: ProfileName;
  readonly tier: ProxiedTier;
  readonly rate: number;
  readonly outageMs: number;
  readonly sent: number;
  /** Answered with an error at the first try (the client had to retry). */
  readonly firstTryFailed: number;
  /** Accepted after one or more retries. */
  readonly delayed: number;
  /** Not accepted within FAILOVER_RETRY_MS of being due. */
  readonly failed: number;
  /** Due → 201 of every accepted write (retries included). */
  readonly accept: Summary;
  /** Due → 201 of the writes due during the outage. */
  readonly acceptDuringOutage: Summary;
  /** Persist lag of the writes due during the outage. */
  readonly persistLagDuringOutage: Summary;
  readonly apiPostgresQueriesPerMessage: number;
  /** Per second: writes due, first tries that failed, accept p99 (ms). */
  readonly timeline: { second: number; due: number; firstTryFailed: number; p99: number }[];
  readonly ledger: { accepted: number; inPostgres: number; inClickHouse: number };
}

// ------------------------------------------------------------------ measurements

const pgPool = new pg.Pool({ connectionString: DATABASE_URL.replace(`/${DATABASE}`, "/postgres"), max: 2 });
const benchPool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
const clickhouse = createClickHouseClient({ ...CLICKHOUSE, timeoutMs: 60_000 });

const transactions = async (): Promise<number> => {
  const { rows } = await pgPool.query<{ n: string }>(
    "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
    [DATABASE],
  );
  return Number(rows[0]?.n ?? 0);
};

const round2 = (x: number): number => Math.round(x * 100) / 100;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const chunks = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/** Persist lags (ms) of the given messages, once they are all in PostgreSQL. */
const persistLags = async (ids: readonly string[], timeoutMs = 120_000): Promise<number[]> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lags: number[] = [];
    for (const part of chunks(ids, 5000)) {
      const { rows } = await benchPool.query<{ lag: number }>(
        `SELECT (extract(epoch FROM persisted_at) * 1000 - created_at_ms)::float8 AS lag
           FROM messages WHERE id = ANY($1::uuid[])`,
        [part],
      );
      lags.push(...rows.map((r) => r.lag));
    }
    if (lags.length === ids.length) return lags;
    if (Date.now() > deadline)
      throw new Error(`only ${lags.length} of ${ids.length} messages reached PostgreSQL`);
    await sleep(500);
  }
};

/** Analytics lags (ms), once every message is in ClickHouse exactly once (as FINAL sees it). */
const analyticsLags = async (ids: readonly string[], timeoutMs = 120_000): Promise<number[]> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lags: number[] = [];
    let duplicates = 0;
    for (const part of chunks(ids, 2000)) {
      const result = await clickhouse.query({
        query: `SELECT count() AS n, any(archived_at_ms - created_at_ms) AS lag FROM messages FINAL
                 WHERE id IN (${part.map((id) => `'${id}'`).join(",")}) GROUP BY id`,
        format: "JSONEachRow",
      });
      for (const row of await result.json<{ n: string; lag: string }>()) {
        if (Number(row.n) !== 1) duplicates++;
        lags.push(Number(row.lag));
      }
    }
    if (duplicates > 0) throw new Error(`${duplicates} messages appear more than once in ClickHouse`);
    if (lags.length === ids.length) return lags;
    if (Date.now() > deadline)
      throw new Error(`only ${lags.length} of ${ids.length} messages reached ClickHouse`);
    await sleep(1000);
  }
};

const setSlowdown = async (ms: number): Promise<void> => {
  await benchPool.query("DROP TRIGGER IF EXISTS bench_slow_commit ON messages");
  if (ms === 0) return;
  // Every statement that writes messages takes `ms` longer: the synchronous accept's commit, and
  // each batch insert of the persist consumer.
  await benchPool.query(`CREATE OR REPLACE FUNCTION bench_slow_commit() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN PERFORM pg_sleep(${ms / 1000}); RETURN NULL; END $$`);
  await benchPool.query(
    "CREATE TRIGGER bench_slow_commit AFTER INSERT ON messages FOR EACH STATEMENT EXECUTE FUNCTION bench_slow_commit()",
  );
};

const runStep = async (
  bench: BenchStack,
  rate: number,
  slowedPostgresMs: number,
  durationMs = PLAN.durationMs,
): Promise<{ report: StepReport; accepted: AcceptedMessage[] }> => {
  const { report, accepted } = await measureStep(
    bench,
    {
      type: "step",
      rate,
      warmupMs: PLAN.warmupMs,
      durationMs,
      readRate: PLAN.readRate,
    },
    slowedPostgresMs,
  );
  return { report, accepted };
};

/** Runs one step of the load generator and measures it in every tier. */
const measureStep = async (
  bench: BenchStack,
  step: StepRequest,
  slowedPostgresMs: number,
  during?: (started: number) => Promise<void>,
): Promise<{ report: StepReport; accepted: AcceptedMessage[]; result: StepResult }> => {
  const { rate } = step;
  process.stdout.write(
    `  ${String(rate).padStart(5)} msg/s${slowedPostgresMs ? ` (PostgreSQL +${slowedPostgresMs} ms)` : ""} … `,
  );
  const before = await bench.stats();
  const proxyBefore = await bench.proxyStats();
  const txBefore = await transactions();
  const started = Date.now();
  const [result] = await Promise.all([
    call<StepResult>(bench.load, step, "step"),
    during?.(started) ?? Promise.resolve(),
  ]);
  // CPU and event-loop delay of the load itself, before waiting for persistence to catch up.
  const loaded = await bench.stats();
  const proxyLoaded = await bench.proxyStats();
  const ids = result.accepted.map((a) => a.id);
  const measured = result.accepted.filter((a) => a.measured).map((a) => a.id);
  const [persist, analytics] = await (async () => {
    try {
      return [await persistLags(ids, PERSIST_WAIT_MS), await analyticsLags(ids, PERSIST_WAIT_MS)];
    } catch (error) {
      console.error(`  queues (visible/in flight/delayed): ${JSON.stringify(await queueDepths(bench))}`);
      throw error;
    }
  })();
  await sleep(1500); // pg_stat_database is flushed about once a second
  const txAfter = await transactions();
  const after = await bench.stats();
  const measuredSet = new Set(measured);
  const lagsOf = (lags: number[]) => lags.filter((_, i) => measuredSet.has(ids[i] as string));
  const inserts =
    (after.consumers.analytics.invocations ?? 0) - (before.consumers.analytics.invocations ?? 0);
  const sent = Math.max(1, result.sent);
  const report: StepReport = {
    rate,
    slowedPostgresMs,
    achievedPerSecond: Math.round(result.acceptLatencies.length / result.measuredSeconds),
    failed: result.failed,
    shed: result.shed,
    shedLatency: summarize(result.shedLatencies),
    accept: summarize(result.acceptLatencies),
    serverTiming: Object.fromEntries(Object.entries(result.serverTimings).map(([k, v]) => [k, summarize(v)])),
    persistLag: summarize(lagsOf(persist)),
    analyticsLag: summarize(lagsOf(analytics)),
    delivery: summarize(result.deliveryLatencies),
    deliveryAfterAnswer: summarize(result.deliveryAfterAnswer),
    reads: summarize(result.readLatencies),
    readHitRate:
      result.readHits + result.readMisses === 0
        ? Number.NaN
        : result.readHits / (result.readHits + result.readMisses),
    postgresRoundTripsPerMessage: ids.length === 0 ? Number.NaN : (txAfter - txBefore) / ids.length,
    apiPostgresQueriesPerMessage:
      ids.length === 0 ? Number.NaN : round3((loaded.api.pgQueries - before.api.pgQueries) / ids.length),
    rowsPerClickHouseInsert: inserts === 0 ? Number.NaN : ids.length / inserts,
    sendLateness: summarize(result.sendLateness),
    cpuPerMessageMs: {
      api: round2((loaded.api.cpuMs - before.api.cpuMs) / sent),
      sqs: round2((loaded.sqs.cpuMs - before.sqs.cpuMs) / sent),
      consumers: round2((after.consumers.cpuMs - before.consumers.cpuMs) / sent),
      loadGenerator: round2(result.cpuPerRequestMs),
      ...(proxyBefore !== undefined && proxyLoaded !== undefined
        ? { proxies: round2((proxyLoaded.cpuMs - proxyBefore.cpuMs) / sent) }
        : {}),
    },
    apiCpuPerAcceptedMs:
      ids.length === 0 ? Number.NaN : round3((loaded.api.cpuMs - before.api.cpuMs) / ids.length),
    loopDelayP99Ms: {
      api: round2(loaded.api.loopDelay.p99),
      sqs: round2(loaded.sqs.loopDelay.p99),
      consumers: round2(loaded.consumers.loopDelay.p99),
      loadGenerator: round2(result.loopDelay.p99),
    },
  };
  console.log(
    `accept p50 ${report.accept.p50} p99 ${report.accept.p99} max ${report.accept.max} ms, ` +
      `${report.achievedPerSecond}/s, failed ${report.failed}, shed ${report.shed}, persist lag p99 ${report.persistLag.p99} ms, ` +
      `API PostgreSQL statements ${report.apiPostgresQueriesPerMessage}/msg, API CPU ${report.apiCpuPerAcceptedMs} ms/accepted`,
  );
  return { report, accepted: result.accepted, result };
};

/**
 * The consumers' retry settings of prod (lib/config/environments.ts): base 10 s doubling to 900 s,
 * 20 receives before the DLQ — what rides out a failover in AWS.
 */
const PROD_RETRIES = { RETRY_BASE_DELAY_SECONDS: "10", RETRY_MAX_DELAY_SECONDS: "900" };
const PROD_MAX_RECEIVE_COUNT = 20;

const startStack = (mode: "queued" | "sync", profile: ProfileName, proxies = false) =>
  startBenchStack({
    mode,
    profile,
    proxies,
    databaseUrl: DATABASE_URL,
    clickhouseDatabase: CLICKHOUSE.database,
    queuePrefix: `bench-${profile}-${mode}`,
    threads: THREADS,
    subscribedThreads: SUBSCRIBED,
    env: {
      ...PROD_RETRIES,
      // BENCH_LOG_LEVEL=WARN shows the handlers' warnings (fallbacks, breakers); the bench logs errors only.
      ...(process.env.BENCH_LOG_LEVEL ? { LOG_LEVEL: process.env.BENCH_LOG_LEVEL } : {}),
    },
    maxReceiveCount: PROD_MAX_RECEIVE_COUNT,
  });

const holds = (s: StepReport): boolean =>
  s.accept.p99 <= CAPACITY_P99_MS &&
  s.achievedPerSecond >= 0.95 * s.rate &&
  s.failed + s.shed <= (0.01 * s.rate * (PLAN.warmupMs + PLAN.durationMs)) / 1000;

const collapsed = (s: StepReport): boolean =>
  s.accept.p99 > COLLAPSE_P99_MS || s.failed > (0.05 * s.rate * (PLAN.warmupMs + PLAN.durationMs)) / 1000;

const ledgerOf = async (accepted: readonly AcceptedMessage[]) => {
  const ids = accepted.map((a) => a.id);
  return {
    accepted: ids.length,
    inPostgres: (await persistLags(ids, 300_000)).length,
    inClickHouse: (await analyticsLags(ids, 300_000)).length,
  };
};

const runMode = async (
  mode: "queued" | "sync",
  profile: ProfileName,
  rates: readonly number[],
  compare: boolean,
): Promise<ModeReport> => {
  console.log(
    `\n${mode === "queued" ? "three-tier (queued)" : "synchronous baseline (ACCEPT_MODE=sync)"}, profile ${profile}`,
  );
  const bench = await startStack(mode, profile);
  try {
    const steps: StepReport[] = [];
    const slowed: StepReport[] = [];
    const all: AcceptedMessage[] = [];
    let collapsedAt: number | null = null;
    for (const rate of rates) {
      const { report, accepted } = await runStep(bench, rate, 0);
      steps.push(report);
      all.push(...accepted);
      if (collapsed(report)) {
        collapsedAt = rate;
        console.log(`  collapsed at ${rate} msg/s: the ladder stops here`);
        break;
      }
    }
    for (const slow of compare ? [0, SLOWDOWN_MS] : []) {
      await setSlowdown(slow);
      const { report, accepted } = await runStep(bench, PLAN.compareRate, slow, PLAN.compareDurationMs);
      slowed.push(report);
      all.push(...accepted);
    }
    await setSlowdown(0);
    const held = steps.filter(holds).map((s) => s.rate);
    return {
      mode,
      profile,
      steps,
      slowed,
      capacity: held.length === 0 ? 0 : Math.max(...held),
      collapsedAt,
      ledger: await ledgerOf(all),
    };
  } finally {
    await bench.stop();
  }
};

/**
 * A tier unreachable for `outageMs` in the middle of a steady load, with clients that retry a
 * failed try with the same key after its Retry-After: what fails, what is delayed, what is lost.
 */
/** Depth of every queue of the stack (visible, in flight, delayed): what is left when a ledger falls short. */
const queueDepths = async (bench: BenchStack): Promise<Record<string, string>> => {
  const sqs = new SQSClient({
    endpoint: bench.sqsEndpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
  });
  try {
    const { QueueUrls = [] } = await sqs.send(new ListQueuesCommand({}));
    const depths: Record<string, string> = {};
    for (const url of QueueUrls) {
      const { Attributes = {} } = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }),
      );
      depths[url.split("/").at(-1) as string] =
        `${Attributes.ApproximateNumberOfMessages}/${Attributes.ApproximateNumberOfMessagesNotVisible}/${Attributes.ApproximateNumberOfMessagesDelayed}`;
    }
    return depths;
  } finally {
    sqs.destroy();
  }
};

const runFailover = async (
  mode: "queued" | "sync",
  profile: ProfileName,
  tier: ProxiedTier,
): Promise<FailoverReport> => {
  const { rate, beforeMs, outageMs, afterMs } = PLAN.failover;
  console.log(
    `\nfailover: ${tier} unreachable for ${outageMs / 1000} s at ${rate} msg/s, ${mode}, profile ${profile}`,
  );
  const bench = await startStack(mode, profile, true);
  try {
    const durationMs = beforeMs + outageMs + afterMs;
    const { report, accepted, result } = await measureStep(
      bench,
      { type: "step", rate, warmupMs: 0, durationMs, readRate: PLAN.readRate, retryForMs: FAILOVER_RETRY_MS },
      0,
      async () => {
        await sleep(beforeMs);
        await bench.cut(tier);
        await sleep(outageMs);
        await bench.restore(tier);
      },
    );
    const outcomes = result.outcomes ?? [];
    const inOutage = (o: WriteOutcome) => o.dueMs >= beforeMs && o.dueMs < beforeMs + outageMs;
    const latencies = (xs: readonly WriteOutcome[]) =>
      xs.flatMap((o) => (o.latencyMs === null ? [] : [o.latencyMs]));
    const dueAtOf = new Map(accepted.map((a) => [a.dueAt, a.id]));
    const outageStart = Math.min(...accepted.map((a) => a.dueAt)) + beforeMs;
    const outageIds = [...dueAtOf]
      .filter(([dueAt]) => dueAt >= outageStart && dueAt < outageStart + outageMs)
      .map(([, id]) => id);
    const seconds = Math.ceil(durationMs / 1000);
    const timeline = Array.from({ length: seconds }, (_, second) => {
      const due = outcomes.filter((o) => Math.floor(o.dueMs / 1000) === second);
      return {
        second,
        due: due.length,
        firstTryFailed: due.filter((o) => o.attempts > 1 || o.latencyMs === null).length,
        p99: summarize(latencies(due)).p99,
      };
    });
    const failover: FailoverReport = {
      mode,
      profile,
      tier,
      rate,
      outageMs,
      sent: outcomes.length,
      firstTryFailed: outcomes.filter((o) => o.attempts > 1 || o.latencyMs === null).length,
      delayed: outcomes.filter((o) => o.attempts > 1 && o.latencyMs !== null).length,
      failed: outcomes.filter((o) => o.latencyMs === null).length,
      accept: summarize(latencies(outcomes)),
      acceptDuringOutage: summarize(latencies(outcomes.filter(inOutage))),
      persistLagDuringOutage: summarize(
        (await persistLags(outageIds, 300_000)).filter((lag) => Number.isFinite(lag)),
      ),
      apiPostgresQueriesPerMessage: report.apiPostgresQueriesPerMessage,
      timeline,
      ledger: await ledgerOf(accepted),
    };
    console.log(
      `  first tries failed ${failover.firstTryFailed}, delayed ${failover.delayed}, not accepted ${failover.failed}; ` +
        `accept p50/p99/max ${failover.accept.p50}/${failover.accept.p99}/${failover.accept.max} ms; ` +
        `ledger ${failover.ledger.inPostgres}/${failover.ledger.accepted} PG, ${failover.ledger.inClickHouse} CH`,
    );
    return failover;
  } finally {
    await bench.stop();
  }
};

const versions = async () => {
  const [pgVersion] = (await pgPool.query<{ server_version: string }>("SHOW server_version")).rows;
  const ch = await (await clickhouse.query({ query: "SELECT version() AS v", format: "JSONEachRow" })).json<{
    v: string;
  }>();
  return { postgres: pgVersion?.server_version, clickhouse: ch[0]?.v };
};

const machine = async () => ({
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  ...(await versions()),
});

const skipped = (mode: "queued" | "sync", profile: ProfileName = "local"): ModeReport => ({
  mode,
  profile,
  steps: [],
  slowed: [],
  capacity: 0,
  collapsedAt: null,
  ledger: { accepted: 0, inPostgres: 0, inClickHouse: 0 },
});

const streamingScenario = () =>
  runStreaming(
    {
      databaseUrl: DATABASE_URL,
      database: DATABASE,
      clickhouseDatabase: CLICKHOUSE.database,
      benchPool,
      pgPool,
      clickhouse,
    },
    {
      ...(args.quick ? STREAMING_PLANS.quick : STREAMING_PLANS.full),
      ...(args.streams !== undefined ? { streams: Number(args.streams) } : {}),
      ...(args["stream-seconds"] !== undefined ? { durationMs: Number(args["stream-seconds"]) * 1000 } : {}),
    },
    args.quick || args.streams !== undefined || args["stream-seconds"] !== undefined,
  );

/** The accept ladders under each profile, the failovers, the bundles and the streaming scenario. */
const fullRun = async (started: Date): Promise<BenchResult> => {
  const ladders = !args.failover;
  const ladder = async (profile: ProfileName) => {
    const plan = profile === "local" ? PLAN : { queued: PLAN.aws, sync: PLAN.aws };
    const rates = (planned: readonly number[]) => ONLY_RATES ?? planned;
    // The PostgreSQL slowdown comparison runs once, with every tier direct.
    const compare = profile === "local" && !args["ladder-only"];
    return {
      queued: MODES.has("queued")
        ? await runMode("queued", profile, rates(plan.queued), compare)
        : skipped("queued", profile),
      sync: MODES.has("sync")
        ? await runMode("sync", profile, rates(plan.sync), compare)
        : skipped("sync", profile),
    };
  };
  const local = ladders && PROFILES_RUN.includes("local") ? await ladder("local") : undefined;
  const aws = ladders && PROFILES_RUN.includes("aws") ? await ladder("aws") : undefined;
  // Failovers under the last profile of the run (aws in the full run): as close to AWS as it gets.
  const failoverProfile = PROFILES_RUN.at(-1) as ProfileName;
  const failover: FailoverReport[] = [];
  if (!args["no-failover"] && !args["ladder-only"])
    for (const tier of ["postgres", "redis"] as const)
      for (const mode of ["queued", "sync"] as const)
        if (MODES.has(mode)) failover.push(await runFailover(mode, failoverProfile, tier));
  const full = ladders && !args["ladder-only"];
  console.log(full ? "\nbundles" : "");
  const bundles = full ? await measureBundles() : [];
  const streaming = full ? await streamingScenario() : undefined;
  return {
    date: started.toISOString(),
    quick: args.quick,
    machine: await machine(),
    plan: {
      ...PLAN,
      threads: THREADS,
      subscribedThreads: SUBSCRIBED,
      slowdownMs: SLOWDOWN_MS,
      profiles: PROFILES,
    },
    modes: local ?? { queued: skipped("queued"), sync: skipped("sync") },
    ...(aws !== undefined ? { aws } : {}),
    ...(failover.length > 0 ? { failover } : {}),
    bundles,
    ...(streaming !== undefined ? { streaming } : {}),
  };
};

/** The streaming scenario alone, in place of the streaming part of the results already written. */
const streamingRun = async (started: Date, out: string): Promise<BenchResult> => {
  const streaming = await streamingScenario();
  const previous = await readFile(path.join(out, "latest.json"), "utf8").then(
    (text) => JSON.parse(text) as BenchResult & { targets?: unknown },
    () => undefined,
  );
  if (previous !== undefined) {
    const { targets: _targets, ...rest } = previous;
    return { ...rest, machine: await machine(), streaming };
  }
  return {
    date: started.toISOString(),
    quick: args.quick,
    machine: await machine(),
    plan: { ...PLAN, threads: THREADS, subscribedThreads: SUBSCRIBED, slowdownMs: SLOWDOWN_MS },
    modes: { queued: skipped("queued"), sync: skipped("sync") },
    bundles: [],
    streaming,
  };
};

/**
 * What `npm run cost` takes from a run (scripts/cost/per-message.ts reads docs/performance/usage.json,
 * a copy of this): the accept function's time under the aws profile (its billed duration in AWS),
 * rows per ClickHouse insert and PostgreSQL transactions per message at 1,000 msg/s.
 */
const measuredUsage = (r: BenchResult) => {
  const aws = r.aws?.queued.steps.find((s) => s.rate === 200) ?? r.aws?.queued.steps[0];
  const local = r.modes.queued.steps.find((s) => s.rate === 1000);
  if (aws === undefined && local === undefined) return undefined;
  return {
    date: r.date,
    source:
      "npm run bench: acceptFunctionMs = Server-Timing total p50 of the three-tier accept under the aws profile at 200 msg/s; the rest from the local profile at 1,000 msg/s",
    ...(aws?.serverTiming.total !== undefined
      ? { acceptFunctionMs: round2(aws.serverTiming.total.p50) }
      : {}),
    ...(local !== undefined && Number.isFinite(local.rowsPerClickHouseInsert)
      ? { analyticsRowsPerInsert: Math.round(local.rowsPerClickHouseInsert) }
      : {}),
    ...(local !== undefined && Number.isFinite(local.postgresRoundTripsPerMessage)
      ? {
          postgresTransactionsPerMessage: round3(local.postgresRoundTripsPerMessage),
          persistMessagesPerBatch: Math.round(1 / Math.max(local.postgresRoundTripsPerMessage, 1e-3)),
        }
      : {}),
  };
};

const main = async (): Promise<void> => {
  await ensurePostgres(DATABASE_URL, { recreate: true });
  await ensureClickHouse(CLICKHOUSE, { recreate: true });
  const started = new Date();
  const out = path.resolve(ROOT, args.out ?? "bench-results");
  const result = args.streaming ? await streamingRun(started, out) : await fullRun(started);
  await mkdir(out, { recursive: true });
  const { markdown, charts, targets } = renderReport(result);
  await writeFile(path.join(out, "latest.json"), `${JSON.stringify({ ...result, targets }, null, 2)}\n`);
  await writeFile(path.join(out, "report.md"), markdown);
  for (const [name, svg] of Object.entries(charts)) await writeFile(path.join(out, name), svg);
  const usage = measuredUsage(result);
  if (usage !== undefined)
    await writeFile(path.join(out, "usage.json"), `${JSON.stringify(usage, null, 2)}\n`);
  console.log(`\ntargets`);
  for (const t of targets) console.log(`  ${t.pass ? "PASS" : "FAIL"}  ${t.name}: ${t.value}`);
  console.log(
    `\nwritten: ${path.relative(ROOT, out)}/latest.json, report.md, ${Object.keys(charts).join(", ")}`,
  );
  await Promise.all([pgPool.end(), benchPool.end(), clickhouse.close()]);
};

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
