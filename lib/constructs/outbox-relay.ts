/**
 * The outbox relay of SCHEDULED_FUNCTIONS: forwards messages that were committed synchronously
 * (SQS-down fallback, rollback mode) from PostgreSQL to the analytics queue.
 *
 * Every run connects to PostgreSQL, so how often it runs decides whether a pausable Aurora ever
 * pauses. The outbox only fills when SQS fails: the accept path then commits synchronously (metric
 * QueueFallbacks), and the persist consumer hands messages it cannot publish to the analytics queue
 * to the outbox (its SQS circuit breaker opens: BreakerOpened, Tier sqs); and in rollback mode. So
 * besides its schedule the relay runs when it has work: an alarm on those two metrics invokes it
 * when they start (ALARM) and once more after they stopped (OK), which forwards what was committed
 * in between (a failed run is retried twice by Lambda, minutes apart); the schedule is the backstop
 * (daily in dev, every minute in prod). Runs may overlap; a message forwarded twice is harmless
 * (ClickHouse deduplicates by id). Each run also hands erasures that stalled (their worker record
 * was lost) to the erasure worker again.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import { Construct } from "constructs";
import { SCHEDULED_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { METRICS_NAMESPACE, Metric, SERVICE_NAME } from "../../lambdas/runtime/metric-names.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction } from "./chat-function.ts";
import {
  functionEnvironment,
  grantNeeds,
  type Placement,
  type Resources,
  type RuntimeSettings,
} from "./runtime.ts";

export interface OutboxRelayProps {
  /** Minutes between scheduled runs (1–1440). @default 1 */
  readonly intervalMinutes?: number;
  /** Also run when synchronous fallbacks start and stop (alarm on QueueFallbacks). @default false */
  readonly runOnQueueFallback?: boolean;
  /** Below the schedule's interval, so scheduled runs do not overlap. @default 50 */
  readonly timeoutSeconds?: number;
  /** @default 256 */
  readonly memoryMb?: number;
  readonly placement: Placement;
  readonly runtime: RuntimeSettings;
  readonly resources: Resources;
  /**
   * The @connections endpoint: the relay pushes messages it makes visible late.
   * @default none (subscribers notice the gap in positions and replay)
   */
  readonly webSocketApiEndpoint?: string;
}

export class OutboxRelay extends Construct {
  readonly function: ChatFunction;
  readonly rule: events.Rule;
  /** The alarm that runs the relay when fallbacks start and stop (runOnQueueFallback). */
  readonly fallbackTrigger?: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: OutboxRelayProps) {
    super(scope, id);
    const intervalMinutes = props.intervalMinutes ?? 1;
    const timeoutSeconds = props.timeoutSeconds ?? 50;
    new Problems()
      .integer("intervalMinutes", intervalMinutes, 1, 1_440)
      .integer("timeoutSeconds", timeoutSeconds, 1, Math.min(900, intervalMinutes * 60 - 1))
      .integer("memoryMb", props.memoryMb ?? 256, 128, 10_240)
      .throwIfAny(`props of ${this.node.path}`);

    const every =
      intervalMinutes === 1
        ? "every minute"
        : intervalMinutes % 60 === 0
          ? `every ${intervalMinutes / 60 === 1 ? "hour" : `${intervalMinutes / 60} hours`}`
          : `every ${intervalMinutes} minutes`;
    const spec = SCHEDULED_FUNCTIONS.outboxRelay;
    this.function = new ChatFunction(this, spec.id, {
      entry: spec.entry,
      description: `Outbox relay (${every}${props.runOnQueueFallback === true ? ", and when the outbox fills" : ""})`,
      memoryMb: props.memoryMb ?? 256,
      timeout: Duration.seconds(timeoutSeconds),
      environment: functionEnvironment(props.runtime, {
        pgPoolMax: 1,
        ...(props.webSocketApiEndpoint !== undefined
          ? { webSocketApiEndpoint: props.webSocketApiEndpoint }
          : {}),
      }),
      ...props.placement,
    });
    // Redis: it confirms relayed messages to the hot tier (which makes visible what never was).
    // The erasure queue: it hands erasures whose record was lost to the worker again.
    grantNeeds(
      this.function.function,
      [
        "database",
        "redis",
        "sendToAnalyticsQueue",
        "sendToErasureQueue",
        ...(props.webSocketApiEndpoint !== undefined ? (["manageConnections"] as const) : []),
      ],
      props.resources,
    );
    this.rule = new events.Rule(this, "Schedule", {
      description: "Chat pipeline outbox relay",
      schedule: events.Schedule.rate(Duration.minutes(intervalMinutes)),
      targets: [new targets.LambdaFunction(this.function.function, { retryAttempts: 0 })],
    });

    if (props.runOnQueueFallback === true) {
      const metric = (metricName: string, extra: Record<string, string> = {}) =>
        new cloudwatch.Metric({
          namespace: METRICS_NAMESPACE,
          metricName,
          dimensionsMap: { service: SERVICE_NAME, env: props.runtime.appEnv, ...extra },
          statistic: "Sum",
          period: Duration.minutes(1),
        });
      this.fallbackTrigger = new cloudwatch.Alarm(this, "FallbackTrigger", {
        alarmName: `chat-pipeline-${props.runtime.appEnv}-OutboxRelayTrigger`,
        alarmDescription:
          "Runs the outbox relay when messages start (ALARM) and stop (OK) going to the outbox (SQS or Redis unreachable). Not a page: the BreakerOpen alarms are.",
        metric: new cloudwatch.MathExpression({
          expression:
            "FILL(fallbacks, 0) + FILL(sqsBreaker, 0) + FILL(skipped, 0) + FILL(redisBreaker, 0) + FILL(handoffs, 0)",
          usingMetrics: {
            fallbacks: metric(Metric.QueueFallbacks),
            sqsBreaker: metric(Metric.BreakerOpened, { Tier: "sqs" }),
            // Accepted without Redis (committed, to be made visible), or persisted while Redis or
            // the analytics queue was away: all wait in the outbox.
            skipped: metric(Metric.CacheSkipped),
            redisBreaker: metric(Metric.BreakerOpened, { Tier: "redis" }),
            handoffs: metric(Metric.OutboxHandoffs),
          },
          period: Duration.minutes(1),
          label: "messages going to the outbox",
        }),
        threshold: 0,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      this.fallbackTrigger.addAlarmAction(new actions.LambdaAction(this.function.function));
      this.fallbackTrigger.addOkAction(new actions.LambdaAction(this.function.function));
    }
  }
}
