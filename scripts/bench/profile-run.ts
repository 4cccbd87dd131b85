/**
 * A single load step against the three-process local stack (as the benchmark runs it), for profiling: prints accept latency,
 * per-tier Server-Timing, CPU per message of each process and their event-loop delay.
 *   tsx scripts/bench/profile-run.ts <rate> [queued|sync]     (PROF_API=1 / PROF_QUEUES=1 / PROF_SQS=1: --cpu-prof into /tmp/prof;
 *   it expects the chat_bench databases that `npm run bench` creates)
 */
import type { StepResult } from "./load-worker.ts";
import { call, startBenchStack } from "./processes.ts";
import { summarize } from "./stats.ts";

const prof = (flag: string | undefined) => (flag ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []);
const rate = Number(process.argv[2] ?? 300);
const mode = process.argv[3] === "sync" ? "sync" : "queued";
const bench = await startBenchStack({
  mode,
  databaseUrl: process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/chat_bench",
  clickhouseDatabase: "chat_bench",
  queuePrefix: `prof-${mode}`,
  threads: 200,
  subscribedThreads: Number(process.env.SUBS ?? 50),
  execArgv: {
    api: prof(process.env.PROF_API),
    consumers: prof(process.env.PROF_QUEUES),
    sqs: prof(process.env.PROF_SQS),
  },
});
const before = await bench.stats();
const r = await call<StepResult>(
  bench.load,
  { type: "step", rate, warmupMs: 1000, durationMs: 8000, readRate: 0 },
  "step",
);
const after = await bench.stats();
const n = r.accepted.length;
console.log("accept", JSON.stringify(summarize(r.acceptLatencies)), "failed", r.failed);
for (const [k, v] of Object.entries(r.serverTimings)) console.log(`  ${k}`, JSON.stringify(summarize(v)));
for (const name of ["api", "sqs", "consumers"] as const)
  console.log(
    `${name} CPU/msg ${((after[name].cpuMs - before[name].cpuMs) / n).toFixed(3)} ms, loop ${JSON.stringify(after[name].loopDelay)}`,
  );
console.log("send lateness", JSON.stringify(summarize(r.sendLateness)));
console.log(
  `load CPU/msg ${r.cpuPerRequestMs.toFixed(3)} ms; delivery ${JSON.stringify(summarize(r.deliveryLatencies))}`,
);
await bench.stop();
process.exit(0);
