/**
 * One part of the local stack in a process of its own, for the benchmark. In AWS the API functions,
 * the consumer functions and SQS run on separate machines; on one machine they should at least not
 * share an event loop (and the handlers read their configuration once per process):
 *  - "sqs": the SQS endpoint alone;
 *  - "consumers": the persist and analytics consumers and the outbox relay, polling that endpoint;
 *  - "api": the HTTP and WebSocket APIs with their handlers, sending to that endpoint.
 * Driven over IPC: "stats" answers with counters, CPU use and event-loop delay; "stop" shuts down.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import pg from "pg";
import { startSqsEndpoint } from "../local-stack/sqs-endpoint.ts";
import { type LocalStack, startLocalStack } from "../local-stack/stack.ts";
import { LOOP_RESOLUTION_MS, loopDelaySummary } from "./stats.ts";

const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();

/** Statements this process sent to PostgreSQL (the API's cost per accepted message). */
let pgQueries = 0;
const query = pg.Pool.prototype.query;
pg.Pool.prototype.query = function (this: pg.Pool, ...args: unknown[]) {
  pgQueries++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;

export interface ConsumerPlan {
  readonly batchSize: number;
  readonly maxBatchingWindowMs: number;
  readonly concurrency: number;
  readonly maxReceiveCount?: number;
}

export interface StackWorkerConfig {
  readonly role: "sqs" | "consumers" | "api";
  /** The "sqs" process's endpoint (for the other two). */
  readonly sqsEndpoint?: string;
  readonly env?: Record<string, string>;
  readonly queuePrefix?: string;
  readonly consumers?: { persist: ConsumerPlan; analytics: ConsumerPlan };
}

export type StackWorkerReply =
  | { type: "ready"; httpUrl: string; wsUrl: string; sqsEndpoint: string }
  | {
      type: "stats";
      persist: Record<string, number>;
      analytics: Record<string, number>;
      /** CPU time this process used so far, all threads (ms). */
      cpuMs: number;
      /** PostgreSQL statements this process sent so far. */
      pgQueries: number;
      /** Event-loop delay since the previous stats request (ms). */
      loopDelay: { p50: number; p99: number; max: number };
    }
  | { type: "stopped" };

const send = (reply: StackWorkerReply): void => {
  process.send?.(reply);
};

const start = async (config: StackWorkerConfig): Promise<{ stop(): Promise<void>; stack?: LocalStack }> => {
  if (config.role === "sqs") {
    const endpoint = await startSqsEndpoint(0);
    send({ type: "ready", httpUrl: "", wsUrl: "", sqsEndpoint: endpoint.endpoint });
    return { stop: () => endpoint.close() };
  }
  const consumers = config.role === "consumers";
  const stack = await startLocalStack({
    httpPort: 0,
    wsPort: 0,
    ...(config.sqsEndpoint !== undefined ? { externalSqsEndpoint: config.sqsEndpoint } : { sqsPort: 0 }),
    ...(config.queuePrefix !== undefined ? { queuePrefix: config.queuePrefix } : {}),
    ...(config.consumers !== undefined ? { consumers: config.consumers } : {}),
    env: config.env ?? {},
    migrate: false,
    startConsumers: consumers,
    outboxIntervalMs: consumers ? 1000 : 0,
    onError: (source, error) => console.error(`[${source}]`, error instanceof Error ? error.message : error),
  });
  send({ type: "ready", httpUrl: stack.httpUrl, wsUrl: stack.wsUrl, sqsEndpoint: stack.sqsEndpoint });
  return { stop: () => stack.stop(), stack };
};

// The benchmark died or was interrupted: nothing is left serving or polling.
process.once("disconnect", () => process.exit(1));

process.once("message", async (config: StackWorkerConfig) => {
  const running = await start(config);
  loopDelay.reset();
  process.on("message", async (message: { type: string }) => {
    if (message.type === "stats") {
      const cpu = process.cpuUsage();
      send({
        type: "stats",
        persist: { ...(running.stack?.eventSources.persist.stats ?? {}) },
        analytics: { ...(running.stack?.eventSources.analytics.stats ?? {}) },
        cpuMs: (cpu.user + cpu.system) / 1000,
        pgQueries,
        loopDelay: loopDelaySummary(loopDelay),
      });
      loopDelay.reset();
    } else if (message.type === "stop") {
      await running.stop();
      send({ type: "stopped" });
      process.exit(0);
    }
  });
});
