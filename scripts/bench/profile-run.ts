/**
 * A single load step against the three-process local stack (as the benchmark runs it), for profiling: prints accept latency,
 * per-tier Server-Timing, CPU per message of each process and their event-loop delay.
 *   tsx scripts/bench/profile-run.ts <rate> [queued|sync]     (PROF_API=1 / PROF_QUEUES=1: --cpu-prof into /tmp/prof)
 */
import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { LOCAL_DEFAULTS } from "../local-stack/stack.ts";
import type { StepResult } from "./load-worker.ts";
import type { StackWorkerReply } from "./stack-worker.ts";
import { summarize } from "./stats.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const prof = (flag: string | undefined) => (flag ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []);
const spawnWorker = (file: string, extra: string[] = []): ChildProcess =>
  fork(path.join(ROOT, "scripts/bench", file), [], {
    cwd: ROOT,
    execArgv: ["--import", "tsx", ...extra],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
const call = <T>(child: ChildProcess, message: unknown, type: string): Promise<T> =>
  new Promise((resolve) => {
    const on = (r: { type: string }) => {
      if (r.type === type) {
        child.off("message", on);
        resolve(r as T);
      }
    };
    child.on("message", on);
    child.send(message as object);
  });

const rate = Number(process.argv[2] ?? 300);
const mode = process.argv[3] ?? "queued";
const secret = LOCAL_DEFAULTS.JWT_SECRET as string;
const env = {
  ACCEPT_MODE: mode,
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/chat_bench",
  CLICKHOUSE_DATABASE: "chat_bench",
  REDIS_KEY_PREFIX: `prof-${Date.now()}:`,
  JWT_SECRET: secret,
  RATE_LIMIT_PER_SECOND: "0",
  LOG_LEVEL: "ERROR",
};
const consumers = {
  persist: { batchSize: 500, maxBatchingWindowMs: 50, concurrency: 2 },
  analytics: { batchSize: 100, maxBatchingWindowMs: 2000, concurrency: 1 },
};
type Ready = Extract<StackWorkerReply, { type: "ready" }>;
type Stats = Extract<StackWorkerReply, { type: "stats" }>;
const sqs = spawnWorker("stack-worker.ts", prof(process.env.PROF_SQS));
const s = await call<Ready>(sqs, { role: "sqs" }, "ready");
const queues = spawnWorker("stack-worker.ts", prof(process.env.PROF_QUEUES));
await call<Ready>(
  queues,
  { role: "consumers", sqsEndpoint: s.sqsEndpoint, queuePrefix: "prof", env, consumers },
  "ready",
);
const api = spawnWorker("stack-worker.ts", prof(process.env.PROF_API));
const a = await call<Ready>(
  api,
  { role: "api", sqsEndpoint: s.sqsEndpoint, queuePrefix: "prof", env, consumers },
  "ready",
);
const load = spawnWorker("load-worker.ts");
await call(
  load,
  {
    type: "setup",
    httpUrl: a.httpUrl,
    wsUrl: a.wsUrl,
    secret,
    threads: 200,
    subscribedThreads: Number(process.env.SUBS ?? 50),
  },
  "ready",
);
const stats = () => Promise.all([sqs, queues, api].map((w) => call<Stats>(w, { type: "stats" }, "stats")));
const [s0, q0, a0] = (await stats()) as [Stats, Stats, Stats];
const r = await call<StepResult>(
  load,
  { type: "step", rate, warmupMs: 1000, durationMs: 8000, readRate: 0 },
  "step",
);
const [s1, q1, a1] = (await stats()) as [Stats, Stats, Stats];
const n = r.accepted.length;
console.log("accept", JSON.stringify(summarize(r.acceptLatencies)), "failed", r.failed);
for (const [k, v] of Object.entries(r.serverTimings)) console.log(`  ${k}`, JSON.stringify(summarize(v)));
console.log(`api CPU/msg ${((a1.cpuMs - a0.cpuMs) / n).toFixed(3)} ms, loop ${JSON.stringify(a1.loopDelay)}`);
console.log(`sqs CPU/msg ${((s1.cpuMs - s0.cpuMs) / n).toFixed(3)} ms, loop ${JSON.stringify(s1.loopDelay)}`);
console.log(
  `consumers CPU/msg ${((q1.cpuMs - q0.cpuMs) / n).toFixed(3)} ms, loop ${JSON.stringify(q1.loopDelay)}`,
);
console.log("send lateness", JSON.stringify(summarize(r.sendLateness)));
console.log(
  `load CPU/msg ${r.cpuPerRequestMs.toFixed(3)} ms; delivery ${JSON.stringify(summarize(r.deliveryLatencies))}`,
);
load.send({ type: "close" });
await call(api, { type: "stop" }, "stopped");
await call(queues, { type: "stop" }, "stopped");
await call(sqs, { type: "stop" }, "stopped");
process.exit(0);
