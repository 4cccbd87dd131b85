/**
 * The local stack in a process of its own for the benchmark (the handlers read their configuration
 * once per process, and the load generator must not share the stack's event loop). Driven over
 * IPC: it answers "stats" with the event sources' counters and "stop" by shutting down.
 */
import { startLocalStack } from "../local-stack/stack.ts";

export interface StackWorkerConfig {
  readonly env: Record<string, string>;
  readonly queuePrefix: string;
  readonly consumers: {
    persist: { batchSize: number; maxBatchingWindowMs: number; concurrency: number };
    analytics: { batchSize: number; maxBatchingWindowMs: number; concurrency: number };
  };
}

export type StackWorkerReply =
  | { type: "ready"; httpUrl: string; wsUrl: string; persistQueueUrl: string; sqsEndpoint: string }
  | { type: "stats"; persist: Record<string, number>; analytics: Record<string, number> }
  | { type: "stopped" };

const send = (reply: StackWorkerReply): void => {
  process.send?.(reply);
};

process.once("message", async (config: StackWorkerConfig) => {
  const stack = await startLocalStack({
    httpPort: 0,
    wsPort: 0,
    sqsPort: 0,
    queuePrefix: config.queuePrefix,
    env: config.env,
    consumers: config.consumers,
    outboxIntervalMs: 1000,
    onError: (source, error) => console.error(`[${source}]`, error instanceof Error ? error.message : error),
  });
  send({
    type: "ready",
    httpUrl: stack.httpUrl,
    wsUrl: stack.wsUrl,
    persistQueueUrl: stack.queues.persist.url,
    sqsEndpoint: stack.sqsEndpoint,
  });
  process.on("message", async (message: { type: string }) => {
    if (message.type === "stats") {
      send({
        type: "stats",
        persist: { ...stack.eventSources.persist.stats },
        analytics: { ...stack.eventSources.analytics.stats },
      });
    } else if (message.type === "stop") {
      await stack.stop();
      send({ type: "stopped" });
      process.exit(0);
    }
  });
});
