/**
 * The work queues of the pipeline, each with its dead-letter queue: `persist` (accepted messages →
 * PostgreSQL), `analytics` (persisted messages → ClickHouse) and `erasure` (erasures, step by step). Encrypted with
 * SQS-managed keys, TLS-only. A queue's visibility timeout follows from its consumer:
 * AWS's guidance for Lambda event sources is at least 6 × the function timeout + the batching
 * window, so a record is never handed to a second consumer while the first may still run.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

/** The consumer a queue is sized for. */
export interface ConsumerTiming {
  readonly timeoutSeconds: number;
  readonly maxBatchingWindowSeconds: number;
}

/** AWS guidance: visibility timeout ≥ 6 × function timeout + maximum batching window. */
export const requiredVisibilitySeconds = (consumer: ConsumerTiming): number =>
  6 * consumer.timeoutSeconds + consumer.maxBatchingWindowSeconds;

export const visibilityTimeoutFor = (consumer: ConsumerTiming): Duration =>
  Duration.seconds(requiredVisibilitySeconds(consumer));

const MAX_VISIBILITY_SECONDS = 43_200;

export interface WorkQueueProps {
  readonly consumer: ConsumerTiming;
  /** Receives before a record moves to the dead-letter queue. @default 5 */
  readonly maxReceiveCount?: number;
  /** @default 4 days */
  readonly retentionDays?: number;
  /** @default RemovalPolicy.DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

export const validateWorkQueue = (props: WorkQueueProps): readonly string[] => {
  const problems = new Problems();
  const visibility = requiredVisibilitySeconds(props.consumer);
  problems.check(
    visibility <= MAX_VISIBILITY_SECONDS,
    `6 × consumer timeout + batching window (${visibility} s) exceeds the SQS maximum visibility timeout (${MAX_VISIBILITY_SECONDS} s)`,
  );
  problems.integer("maxReceiveCount", props.maxReceiveCount ?? 5, 1, 1_000);
  problems.integer("retentionDays", props.retentionDays ?? 4, 1, 14);
  return problems.list;
};

/** A queue with its dead-letter queue. */
export class WorkQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly visibilityTimeout: Duration;

  constructor(scope: Construct, id: string, props: WorkQueueProps) {
    super(scope, id);
    new Problems().add(validateWorkQueue(props)).throwIfAny(`props of ${this.node.path}`);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    this.visibilityTimeout = visibilityTimeoutFor(props.consumer);

    this.deadLetterQueue = new sqs.Queue(this, "Dlq", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    this.queue = new sqs.Queue(this, "Queue", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: this.visibilityTimeout,
      retentionPeriod: Duration.days(props.retentionDays ?? 4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
      removalPolicy,
    });
  }
}

export interface QueuesProps {
  readonly persist: WorkQueueProps;
  readonly analytics: WorkQueueProps;
  readonly erasure: WorkQueueProps;
}

export class Queues extends Construct {
  readonly persist: WorkQueue;
  readonly analytics: WorkQueue;
  /** Erasures on their way through the tiers (docs/erasure.md). */
  readonly erasure: WorkQueue;

  constructor(scope: Construct, id: string, props: QueuesProps) {
    super(scope, id);
    // Each WorkQueue validates its own props (the error names its path: .../Persist, .../Analytics).
    this.persist = new WorkQueue(this, "Persist", props.persist);
    this.analytics = new WorkQueue(this, "Analytics", props.analytics);
    this.erasure = new WorkQueue(this, "Erasure", props.erasure);
  }
}
