/**
 * The SQS consumers of CONSUMER_FUNCTIONS: `persist` (queue → PostgreSQL → analytics queue),
 * `analytics` (queue → ClickHouse) and `erasure` (the erasure worker: Redis and ClickHouse after
 * PostgreSQL, docs/erasure.md). Each event source mapping reports partial batch failures
 * (the handlers return `batchItemFailures` and postpone transient failures with
 * ChangeMessageVisibility) and caps its concurrency, which bounds the connections the consumer
 * can open to its store whatever the backlog.
 */
import { Duration } from "aws-cdk-lib";
import * as lambdaEventSources from "aws-cdk-lib/aws-lambda-event-sources";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { CONSUMER_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction } from "./chat-function.ts";
import { requiredVisibilitySeconds } from "./queues.ts";
import {
  functionEnvironment,
  grantNeeds,
  type Need,
  type Placement,
  type Resources,
  type RuntimeSettings,
} from "./runtime.ts";

export interface ConsumerSettings {
  /** @default 10 */
  readonly batchSize?: number;
  /** @default 0 */
  readonly maxBatchingWindowSeconds?: number;
  /** @default 2 */
  readonly maxConcurrency?: number;
  /** @default 30 */
  readonly timeoutSeconds?: number;
  /** @default 512 */
  readonly memoryMb?: number;
  /** @default 2 */
  readonly pgPoolMax?: number;
}

/** The queue a consumer reads, with the visibility timeout it was created with. */
export interface ConsumedQueue {
  readonly queue: sqs.IQueue;
  readonly visibilityTimeout: Duration;
}

export const validateConsumer = (s: ConsumerSettings, visibilityTimeout?: Duration): readonly string[] => {
  const batchSize = s.batchSize ?? 10;
  const window = s.maxBatchingWindowSeconds ?? 0;
  const timeout = s.timeoutSeconds ?? 30;
  const problems = new Problems()
    .integer("batchSize", batchSize, 1, 10_000)
    .integer("maxBatchingWindowSeconds", window, 0, 300)
    .integer("maxConcurrency", s.maxConcurrency ?? 2, 2, 1_000)
    .integer("timeoutSeconds", timeout, 1, 900)
    .integer("memoryMb", s.memoryMb ?? 512, 128, 10_240)
    .integer("pgPoolMax", s.pgPoolMax ?? 2, 1, 100)
    .check(
      batchSize <= 10 || window >= 1,
      "a batchSize above 10 needs maxBatchingWindowSeconds of at least 1",
    );
  if (visibilityTimeout !== undefined) {
    const required = requiredVisibilitySeconds({ timeoutSeconds: timeout, maxBatchingWindowSeconds: window });
    problems.check(
      visibilityTimeout.toSeconds() >= required,
      `the queue's visibility timeout (${visibilityTimeout.toSeconds()} s) is below 6 × timeout + batching window (${required} s)`,
    );
  }
  return problems.list;
};

export interface ConsumersProps {
  readonly persist: ConsumerSettings & { readonly source: ConsumedQueue };
  readonly analytics: ConsumerSettings & { readonly source: ConsumedQueue };
  readonly erasure: ConsumerSettings & { readonly source: ConsumedQueue };
  readonly placement: Placement;
  readonly runtime: RuntimeSettings;
  readonly resources: Resources;
  /**
   * The @connections endpoint: the persist consumer pushes messages it makes visible late, the
   * erasure worker `thread.deleted` to the subscribers of the threads a user erasure deletes.
   * @default none (subscribers notice the gap in positions and replay)
   */
  readonly webSocketApiEndpoint?: string;
}

const NEEDS: Readonly<Record<keyof typeof CONSUMER_FUNCTIONS, readonly Need[]>> = {
  // The persist queue too: a streamed reply's idle check schedules the next one (docs/streaming.md).
  persist: ["database", "redis", "sendToAnalyticsQueue", "sendToPersistQueue"],
  analytics: ["clickhouse"],
  // Every tier of an erasure, and its own queue for the erasure's next step.
  erasure: ["database", "redis", "clickhouse", "sendToErasureQueue"],
};

/** The time the erasure worker gives a batch: a third of its timeout, at most 10 s. */
export const erasureBudgetMs = (timeoutSeconds: number): number =>
  Math.min(10_000, Math.floor((timeoutSeconds * 1000) / 3));

const CONSUMERS = ["persist", "analytics", "erasure"] as const;

export class Consumers extends Construct {
  readonly functions: Readonly<Record<keyof typeof CONSUMER_FUNCTIONS, ChatFunction>>;

  constructor(scope: Construct, id: string, props: ConsumersProps) {
    super(scope, id);
    const problems = new Problems();
    for (const which of CONSUMERS) {
      const p = props[which];
      problems.add(validateConsumer(p, p.source.visibilityTimeout).map((m) => `${which}: ${m}`));
    }
    problems.throwIfAny(`props of ${this.node.path}`);

    const build = (which: keyof typeof CONSUMER_FUNCTIONS): ChatFunction => {
      const spec = CONSUMER_FUNCTIONS[which];
      const s = props[which];
      // The persist consumer pushes messages made visible late; the erasure worker, thread.deleted.
      const pushes = which !== "analytics" && props.webSocketApiEndpoint !== undefined;
      const fn = new ChatFunction(this, spec.id, {
        entry: spec.entry,
        description: `${which} queue consumer`,
        memoryMb: s.memoryMb ?? 512,
        timeout: Duration.seconds(s.timeoutSeconds ?? 30),
        environment: {
          ...functionEnvironment(props.runtime, {
            pgPoolMax: s.pgPoolMax ?? 2,
            ...(pushes && props.webSocketApiEndpoint !== undefined
              ? { webSocketApiEndpoint: props.webSocketApiEndpoint }
              : {}),
          }),
          ...(which === "erasure"
            ? { ERASURE_BUDGET_MS: String(erasureBudgetMs(s.timeoutSeconds ?? 30)) }
            : {}),
        },
        ...props.placement,
      });
      grantNeeds(
        fn.function,
        [...NEEDS[which], ...(pushes ? (["manageConnections"] as const) : [])],
        props.resources,
      );
      // Receive, delete and ChangeMessageVisibility (retry backoff) are granted with the mapping.
      fn.function.addEventSource(
        new lambdaEventSources.SqsEventSource(s.source.queue, {
          batchSize: s.batchSize ?? 10,
          ...((s.maxBatchingWindowSeconds ?? 0) > 0
            ? { maxBatchingWindow: Duration.seconds(s.maxBatchingWindowSeconds ?? 0) }
            : {}),
          maxConcurrency: s.maxConcurrency ?? 2,
          reportBatchItemFailures: true,
        }),
      );
      return fn;
    };
    this.functions = { persist: build("persist"), analytics: build("analytics"), erasure: build("erasure") };
  }
}
