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
import pg from "pg";
import { createClickHouseClient } from "../../lambdas/adapters/clickhouse/client.ts";
import { ensureClickHouse, ensurePostgres } from "../local-stack/schema.ts";
import { measureBundles } from "./bundles.ts";
import type { AcceptedMessage, StepResult } from "./load-worker.ts";
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
  },
});

const PLAN = args.quick
  ? {
      queued: [100, 1000],
      sync: [100, 1000],
      compareRate: 100,
      compareDurationMs: 4000,
      warmupMs: 1000,
      durationMs: 4000,
      readRate: 50,
    }
  : {
      queued: [50, 100, 200, 300, 500, 1000],
      sync: [50, 100, 200, 300, 500, 1000],
      compareRate: 100,
      // Longer: a p99 from 2,000 samples, steady enough to compare with and without the slowdown.
      compareDurationMs: 20_000,
      warmupMs: 2000,
      durationMs: 10_000,
      readRate: 50,
    };
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
  readonly loopDelayP99Ms: Record<string, number>;
}

export interface ModeReport {
  readonly mode: "queued" | "sync";
  readonly steps: StepReport[];
  readonly slowed: StepReport[];
  /** Highest rate of the ladder held with accept p99 ≤ 10 ms. */
  readonly maxRateWithin10ms: number;
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
  process.stdout.write(
    `  ${String(rate).padStart(5)} msg/s${slowedPostgresMs ? ` (PostgreSQL +${slowedPostgresMs} ms)` : ""} … `,
  );
  const before = await bench.stats();
  const txBefore = await transactions();
  const result = await call<StepResult>(
    bench.load,
    { type: "step", rate, warmupMs: PLAN.warmupMs, durationMs, readRate: PLAN.readRate },
    "step",
  );
  // CPU and event-loop delay of the load itself, before waiting for persistence to catch up.
  const during = await bench.stats();
  const ids = result.accepted.map((a) => a.id);
  const measured = result.accepted.filter((a) => a.measured).map((a) => a.id);
  const [persist, analytics] = [await persistLags(ids), await analyticsLags(ids)];
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
      ids.length === 0 ? Number.NaN : round3((during.api.pgQueries - before.api.pgQueries) / ids.length),
    rowsPerClickHouseInsert: inserts === 0 ? Number.NaN : ids.length / inserts,
    sendLateness: summarize(result.sendLateness),
    cpuPerMessageMs: {
      api: round2((during.api.cpuMs - before.api.cpuMs) / sent),
      sqs: round2((during.sqs.cpuMs - before.sqs.cpuMs) / sent),
      consumers: round2((after.consumers.cpuMs - before.consumers.cpuMs) / sent),
      loadGenerator: round2(result.cpuPerRequestMs),
    },
    loopDelayP99Ms: {
      api: round2(during.api.loopDelay.p99),
      sqs: round2(during.sqs.loopDelay.p99),
      consumers: round2(during.consumers.loopDelay.p99),
      loadGenerator: round2(result.loopDelay.p99),
    },
  };
  console.log(
    `accept p50 ${report.accept.p50} p99 ${report.accept.p99} max ${report.accept.max} ms, ` +
      `${report.achievedPerSecond}/s, failed ${report.failed}, persist lag p99 ${report.persistLag.p99} ms, ` +
      `API PostgreSQL statements ${report.apiPostgresQueriesPerMessage}/msg`,
  );
  return { report, accepted: result.accepted };
};

const runMode = async (mode: "queued" | "sync", rates: readonly number[]): Promise<ModeReport> => {
  console.log(`\n${mode === "queued" ? "three-tier (queued)" : "synchronous baseline (ACCEPT_MODE=sync)"}`);
  const bench = await startBenchStack({
    mode,
    databaseUrl: DATABASE_URL,
    clickhouseDatabase: CLICKHOUSE.database,
    queuePrefix: `bench-${mode}`,
    threads: THREADS,
    subscribedThreads: SUBSCRIBED,
  });

  try {
    const steps: StepReport[] = [];
    const slowed: StepReport[] = [];
    const all: AcceptedMessage[] = [];
    for (const rate of rates) {
      const { report, accepted } = await runStep(bench, rate, 0);
      steps.push(report);
      all.push(...accepted);
    }
    for (const slow of args["ladder-only"] ? [] : [0, SLOWDOWN_MS]) {
      await setSlowdown(slow);
      const { report, accepted } = await runStep(bench, PLAN.compareRate, slow, PLAN.compareDurationMs);
      slowed.push(report);
      all.push(...accepted);
    }
    await setSlowdown(0);

    const ids = all.map((a) => a.id);
    const inPostgres = (await persistLags(ids)).length;
    const inClickHouse = (await analyticsLags(ids)).length;
    const within = steps.filter((s) => s.accept.p99 <= 10 && s.failed === 0).map((s) => s.rate);
    return {
      mode,
      steps,
      slowed,
      maxRateWithin10ms: within.length === 0 ? 0 : Math.max(...within),
      ledger: { accepted: ids.length, inPostgres, inClickHouse },
    };
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

const skipped = (mode: "queued" | "sync"): ModeReport => ({
  mode,
  steps: [],
  slowed: [],
  maxRateWithin10ms: 0,
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

/** The accept ladder, the bundles and the streaming scenario. */
const fullRun = async (started: Date): Promise<BenchResult> => {
  const rates = (planned: readonly number[]) => ONLY_RATES ?? planned;
  const queued = MODES.has("queued") ? await runMode("queued", rates(PLAN.queued)) : skipped("queued");
  const sync = MODES.has("sync") ? await runMode("sync", rates(PLAN.sync)) : skipped("sync");
  console.log("\nbundles");
  const bundles = args["ladder-only"] ? [] : await measureBundles();
  const streaming = args["ladder-only"] ? undefined : await streamingScenario();
  return {
    date: started.toISOString(),
    quick: args.quick,
    machine: await machine(),
    plan: { ...PLAN, threads: THREADS, subscribedThreads: SUBSCRIBED, slowdownMs: SLOWDOWN_MS },
    modes: { queued, sync },
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
