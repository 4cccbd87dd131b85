/**
 * The benchmark's processes: the local stack split in three (SQS endpoint, consumers, APIs) and the
 * load generator, driven over IPC. Shared by `npm run bench` and the single-step profiler.
 */
import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import { Redis } from "ioredis";
import { LOCAL_DEFAULTS } from "../local-stack/defaults.ts";
import { PROFILES, type ProfileName, type ProxiedTier } from "./latency-profiles.ts";
import type { ProxyWorkerReply } from "./proxy-worker.ts";
import type { StackWorkerConfig, StackWorkerReply } from "./stack-worker.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

export type Stats = Extract<StackWorkerReply, { type: "stats" }>;
type Ready = Extract<StackWorkerReply, { type: "ready" }>;

export const PROCESS_NAMES = ["sqs", "consumers", "api"] as const;
export type ProcessName = (typeof PROCESS_NAMES)[number];

/** Sends `message` to the child and resolves with its first reply of `type`. */
export const call = <T>(child: ChildProcess, message: unknown, type: string): Promise<T> =>
  new Promise((resolve, reject) => {
    const onMessage = (reply: { type: string }) => {
      if (reply.type !== type) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(reply as T);
    };
    const onExit = (code: number | null) =>
      reject(new Error(`worker exited (${code}) while waiting for ${type}`));
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send(message as object);
  });

const spawnWorker = (file: string, execArgv: readonly string[] = []): ChildProcess =>
  fork(path.join(import.meta.dirname, file), [], {
    cwd: ROOT,
    execArgv: ["--import", "tsx", ...execArgv],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });

export interface BenchStackOptions {
  readonly mode: "queued" | "sync";
  readonly databaseUrl: string;
  readonly clickhouseDatabase: string;
  readonly queuePrefix: string;
  readonly threads: number;
  readonly subscribedThreads: number;
  /** Extra Node options per process, e.g. `--cpu-prof`. */
  readonly execArgv?: Partial<Record<ProcessName, readonly string[]>>;
  /** The load generator's module (default `load-worker.ts`); it gets the same setup message. */
  readonly loadWorker?: string;
  /** Handler environment over the bench's own (e.g. LOG_LEVEL to see warnings). */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * `aws`: every tier behind a latency proxy with the profile's delays (latency-profiles.ts);
   * `local` (default): direct, unless `proxies` asks for them (with no delay) to cut a tier.
   */
  readonly profile?: ProfileName;
  readonly proxies?: boolean;
  /** Receives before a record of the persist and analytics queues goes to its DLQ. */
  readonly maxReceiveCount?: number;
}

export type ProxyStats = Extract<ProxyWorkerReply, { type: "stats" }>;

export interface BenchStack {
  readonly processes: Record<ProcessName, ChildProcess>;
  /** The load generator, set up with its threads, tokens and WebSocket subscribers. */
  readonly load: ChildProcess;
  /** The handlers' environment as the bench sets it (over the process environment and LOCAL_DEFAULTS). */
  readonly env: Readonly<Record<string, string>>;
  /** Every Redis key of this stack starts with it. */
  readonly redisKeyPrefix: string;
  /** The SQS endpoint (direct, not through a proxy): for looking at the queues. */
  readonly sqsEndpoint: string;
  /** The latency proxies' process, when the tiers are behind proxies. */
  readonly proxy: ChildProcess | undefined;
  /** Makes a tier unreachable (refused and dropped connections) until `restore`. */
  cut(tier: ProxiedTier): Promise<void>;
  restore(tier: ProxiedTier): Promise<void>;
  stats(): Promise<Record<ProcessName, Stats>>;
  /** CPU and event-loop delay of the latency proxies' process (none without proxies). */
  proxyStats(): Promise<ProxyStats | undefined>;
  stop(): Promise<void>;
}

/** Removes the stack's Redis keys (the shared server would otherwise keep them for their TTL, a day). */
const deleteKeys = async (url: string, prefix: string): Promise<void> => {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 5000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
};

export const startBenchStack = async (options: BenchStackOptions): Promise<BenchStack> => {
  const secret = LOCAL_DEFAULTS.JWT_SECRET as string;
  const redisKeyPrefix = `${options.queuePrefix}-${Date.now()}:`;
  const sqs = spawnWorker("stack-worker.ts", options.execArgv?.sqs);
  const { sqsEndpoint: directSqs } = await call<Ready>(
    sqs,
    { role: "sqs" } satisfies StackWorkerConfig,
    "ready",
  );
  const latency = PROFILES[options.profile ?? "local"];
  const proxied = options.proxies === true || Object.keys(latency).length > 0;
  const direct = {
    redis: new URL(process.env.REDIS_URL ?? (LOCAL_DEFAULTS.REDIS_URL as string)),
    postgres: new URL(options.databaseUrl),
    clickhouse: new URL(process.env.CLICKHOUSE_URL ?? (LOCAL_DEFAULTS.CLICKHOUSE_URL as string)),
    sqs: new URL(directSqs),
    // The API's WebSocket port is known once it listens: the proxy is pointed at it then.
    websocket: new URL("http://127.0.0.1:0/local"),
  } satisfies Record<ProxiedTier, URL>;
  const proxy = proxied ? spawnWorker("proxy-worker.ts") : undefined;
  const via = { ...direct };
  if (proxy !== undefined) {
    const { ports } = await call<Extract<ProxyWorkerReply, { type: "started" }>>(
      proxy,
      {
        type: "start",
        proxies: (Object.keys(direct) as ProxiedTier[]).map((tier) => ({
          tier,
          targetPort: Number(direct[tier].port),
          ...(latency[tier] !== undefined ? { latency: latency[tier] } : {}),
        })),
      },
      "started",
    );
    for (const tier of Object.keys(direct) as ProxiedTier[]) {
      const url = new URL(direct[tier]);
      url.hostname = "127.0.0.1";
      url.port = String(ports[tier]);
      via[tier] = url;
    }
  }
  const sqsEndpoint = via.sqs.origin;
  const receives = options.maxReceiveCount !== undefined ? { maxReceiveCount: options.maxReceiveCount } : {};
  const config = {
    sqsEndpoint,
    queuePrefix: options.queuePrefix,
    env: {
      ACCEPT_MODE: options.mode,
      DATABASE_URL: via.postgres.toString(),
      REDIS_URL: via.redis.toString(),
      CLICKHOUSE_URL: via.clickhouse.origin,
      ...(proxy !== undefined ? { WEBSOCKET_API_ENDPOINT: via.websocket.toString() } : {}),
      CLICKHOUSE_DATABASE: options.clickhouseDatabase,
      REDIS_KEY_PREFIX: redisKeyPrefix,
      JWT_SECRET: secret,
      RATE_LIMIT_PER_SECOND: "0",
      LOG_LEVEL: "ERROR",
      PG_POOL_MAX: "8",
      ...options.env,
    },
    consumers: {
      persist: { batchSize: 500, maxBatchingWindowMs: 50, concurrency: 2, ...receives },
      analytics: { batchSize: 100, maxBatchingWindowMs: 2000, concurrency: 1, ...receives },
    },
  };
  const consumers = spawnWorker("stack-worker.ts", options.execArgv?.consumers);
  await call(consumers, { ...config, role: "consumers" } satisfies StackWorkerConfig, "ready");
  const api = spawnWorker("stack-worker.ts", options.execArgv?.api);
  const ready = await call<Ready>(api, { ...config, role: "api" } satisfies StackWorkerConfig, "ready");
  if (proxy !== undefined)
    await call(
      proxy,
      { type: "target", tier: "websocket", port: Number(new URL(ready.wsUrl).port) },
      "targeted",
    );
  const processes = { sqs, consumers, api };
  const load = spawnWorker(options.loadWorker ?? "load-worker.ts");
  await call(
    load,
    {
      type: "setup",
      httpUrl: ready.httpUrl,
      wsUrl: ready.wsUrl,
      secret,
      threads: options.threads,
      subscribedThreads: options.subscribedThreads,
    },
    "ready",
  );
  return {
    processes,
    load,
    env: config.env,
    redisKeyPrefix,
    sqsEndpoint: directSqs,
    proxy,
    async cut(tier) {
      if (proxy === undefined) throw new Error("no proxies: start the stack with proxies: true");
      await call(proxy, { type: "cut", tier }, "cut");
    },
    async restore(tier) {
      if (proxy === undefined) throw new Error("no proxies: start the stack with proxies: true");
      await call(proxy, { type: "restore", tier }, "restored");
    },
    async stats() {
      const replies = await Promise.all(
        PROCESS_NAMES.map((name) => call<Stats>(processes[name], { type: "stats" }, "stats")),
      );
      return Object.fromEntries(PROCESS_NAMES.map((name, i) => [name, replies[i]])) as Record<
        ProcessName,
        Stats
      >;
    },
    async proxyStats() {
      return proxy === undefined ? undefined : await call<ProxyStats>(proxy, { type: "stats" }, "stats");
    },
    /** Stops whatever is still running (also after a failed step). */
    async stop() {
      const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
      if (running(load))
        await new Promise((resolve) => {
          load.once("exit", resolve);
          load.send({ type: "close" });
        });
      for (const name of ["api", "consumers", "sqs"] as const)
        if (running(processes[name])) await call(processes[name], { type: "stop" }, "stopped");
      if (proxy !== undefined && running(proxy)) await call(proxy, { type: "stop" }, "stopped");
      await deleteKeys(direct.redis.toString(), redisKeyPrefix);
    },
  };
};
