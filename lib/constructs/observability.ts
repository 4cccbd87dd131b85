/**
 * The dashboard and the alarms. Application metrics come from the handlers' EMF output
 * (namespace and names from lambdas/runtime/metric-names.ts, dimensions `service` + `env`, plus
 * `Tier` for BreakerOpened); queue depth and function errors from AWS/SQS and AWS/Lambda.
 * Every alarm notifies one SNS topic, both when it fires and when it clears.
 */
import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import type { Tier } from "../../lambdas/core/errors.ts";
import {
  METRICS_NAMESPACE,
  Metric,
  type MetricName,
  SERVICE_NAME,
} from "../../lambdas/runtime/metric-names.ts";
import { Problems } from "../shared/problems.ts";

/** Every tier a circuit breaker guards (checked against the runtime's `Tier` type). */
const TIER_SET = {
  redis: true,
  postgres: true,
  sqs: true,
  clickhouse: true,
  websocket: true,
} satisfies Record<Tier, true>;
export const TIERS = Object.keys(TIER_SET) as Tier[];

export interface AlarmThresholds {
  /** @default 500 */
  readonly acceptLatencyP99Ms?: number;
  /** @default 30000 */
  readonly persistLagP99Ms?: number;
  /** Failed invocations per period tolerated. @default 0 */
  readonly consumerErrors?: number;
  /** @default Duration.minutes(5) */
  readonly period?: Duration;
  /** @default 2 */
  readonly evaluationPeriods?: number;
}

export interface ObservedQueue {
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
}

export interface ObservabilityProps {
  /** Value of the `env` dimension (APP_ENV). */
  readonly appEnv: string;
  readonly queues: { readonly persist: ObservedQueue; readonly analytics: ObservedQueue };
  readonly consumers: { readonly persist: lambda.IFunction; readonly analytics: lambda.IFunction };
  readonly outboxRelay: lambda.IFunction;
  readonly thresholds?: AlarmThresholds;
  /** @default none */
  readonly alarmEmails?: readonly string[];
}

export class Observability extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: readonly cloudwatch.Alarm[];
  private readonly period: Duration;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: ObservabilityProps,
  ) {
    super(scope, id);
    const t = props.thresholds ?? {};
    const acceptP99 = t.acceptLatencyP99Ms ?? 500;
    const persistLagP99 = t.persistLagP99Ms ?? 30_000;
    const consumerErrors = t.consumerErrors ?? 0;
    const evaluationPeriods = t.evaluationPeriods ?? 2;
    this.period = t.period ?? Duration.minutes(5);
    const problems = new Problems();
    problems.range("acceptLatencyP99Ms", acceptP99, 1, 60_000);
    problems.range("persistLagP99Ms", persistLagP99, 1, 86_400_000);
    problems.integer("consumerErrors", consumerErrors, 0, 1_000_000);
    problems.integer("evaluationPeriods", evaluationPeriods, 1, 100);
    problems.check(
      [1, 5, 10, 15, 30, 60].includes(this.period.toMinutes()),
      "period must be 1, 5, 10, 15, 30 or 60 minutes",
    );
    for (const email of props.alarmEmails ?? []) {
      problems.check(/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email), `"${email}" is not an email address`);
    }
    problems.throwIfAny(`props of ${this.node.path}`);

    this.topic = new sns.Topic(this, "AlarmTopic", { displayName: `Chat pipeline ${props.appEnv} alarms` });
    for (const email of props.alarmEmails ?? []) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    // ------------------------------------------------------------------ alarms
    const alarms: cloudwatch.Alarm[] = [];
    const alarm = (
      name: string,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
      periods = evaluationPeriods,
    ): cloudwatch.Alarm => {
      const a = new cloudwatch.Alarm(this, name, {
        alarmName: `chat-pipeline-${props.appEnv}-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(new actions.SnsAction(this.topic));
      a.addOkAction(new actions.SnsAction(this.topic));
      alarms.push(a);
      return a;
    };

    alarm(
      "AcceptLatencyP99",
      this.app(Metric.AcceptLatency, "p99"),
      acceptP99,
      `Accept latency p99 above ${acceptP99} ms`,
    );
    alarm(
      "PersistLagP99",
      this.app(Metric.PersistLag, "p99"),
      persistLagP99,
      `Persist lag p99 (accepted → PostgreSQL) above ${persistLagP99} ms`,
    );
    for (const [which, q] of Object.entries(props.queues)) {
      alarm(
        `${capitalize(which)}DlqNotEmpty`,
        q.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: "Maximum",
          period: Duration.minutes(1),
        }),
        0,
        `Messages in the ${which} dead-letter queue: inspect, fix, then redrive (docs/deploy.md)`,
        1,
      );
    }
    const consumerFunctions: Record<string, lambda.IFunction> = {
      PersistConsumer: props.consumers.persist,
      AnalyticsConsumer: props.consumers.analytics,
      OutboxRelay: props.outboxRelay,
    };
    for (const [name, fn] of Object.entries(consumerFunctions)) {
      alarm(
        `${name}Errors`,
        fn.metricErrors({ statistic: "Sum", period: this.period }),
        consumerErrors,
        `${name}: failed invocations (whole batch retried) above ${consumerErrors} per ${this.period.toMinutes()} min`,
      );
    }
    for (const tier of TIERS) {
      alarm(
        `BreakerOpen-${tier}`,
        this.app(Metric.BreakerOpened, "Sum", { Tier: tier }),
        0,
        `Circuit breaker of ${tier} opened`,
        1,
      );
    }
    this.alarms = alarms;

    // ------------------------------------------------------------------ dashboard
    const graph = (title: string, left: cloudwatch.IMetric[], annotation?: number): cloudwatch.GraphWidget =>
      new cloudwatch.GraphWidget({
        title,
        left,
        width: 8,
        height: 6,
        ...(annotation !== undefined ? { leftAnnotations: [{ value: annotation, label: "alarm" }] } : {}),
      });
    const tiers = [
      Metric.AcceptCacheTime,
      Metric.AcceptQueueTime,
      Metric.AcceptDatabaseTime,
      Metric.AcceptFanoutTime,
    ] as const;
    const queueMetric = (which: string, q: sqs.IQueue, kind: "visible" | "age") =>
      kind === "visible"
        ? q.metricApproximateNumberOfMessagesVisible({
            statistic: "Maximum",
            label: which,
            period: Duration.minutes(1),
          })
        : q.metricApproximateAgeOfOldestMessage({
            statistic: "Maximum",
            label: which,
            period: Duration.minutes(1),
          });

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      dashboardName: `chat-pipeline-${props.appEnv}`,
      defaultInterval: Duration.hours(3),
      widgets: [
        [
          graph(
            "Accept latency (ms)",
            [this.app(Metric.AcceptLatency, "p50"), this.app(Metric.AcceptLatency, "p99")],
            acceptP99,
          ),
          graph(
            "Accept time per tier, p50 (ms)",
            tiers.map((m) => this.app(m, "p50")),
          ),
          graph(
            "Accept time per tier, p99 (ms)",
            tiers.map((m) => this.app(m, "p99")),
          ),
        ],
        [
          graph("Accepted", [
            this.app(Metric.MessagesAccepted, "Sum"),
            this.app(Metric.IdempotentReplays, "Sum"),
          ]),
          graph("Cache hits / misses", [
            this.app(Metric.CacheHits, "Sum"),
            this.app(Metric.CacheMisses, "Sum"),
          ]),
          graph("Failovers", [
            this.app(Metric.CacheSkipped, "Sum", {}, "cache skipped"),
            this.app(Metric.QueueFallbacks, "Sum", {}, "SQS down: committed synchronously"),
            this.app(Metric.AcceptUnavailable, "Sum", {}, "503: no durable tier"),
            ...TIERS.map((tier) =>
              this.app(Metric.BreakerOpened, "Sum", { Tier: tier }, `breaker opened: ${tier}`),
            ),
          ]),
        ],
        [
          graph(
            "Persist lag (ms)",
            [this.app(Metric.PersistLag, "p50"), this.app(Metric.PersistLag, "p99")],
            persistLagP99,
          ),
          graph("Persist consumer", [
            this.app(Metric.MessagesPersisted, "Sum"),
            this.app(Metric.DuplicatesIgnored, "Sum"),
            this.app(Metric.PersistFailures, "Sum"),
          ]),
          graph("Archive (ClickHouse)", [
            this.app(Metric.ArchiveLag, "p99", {}, "archive lag p99 (ms)"),
            this.app(Metric.RowsArchived, "Sum"),
            this.app(Metric.ArchiveFailures, "Sum"),
            this.app(Metric.OutboxForwarded, "Sum"),
          ]),
        ],
        [
          graph("WebSocket deliveries", [
            this.app(Metric.WebSocketDelivered, "Sum"),
            this.app(Metric.WebSocketGone, "Sum"),
            this.app(Metric.WebSocketFailed, "Sum"),
          ]),
          graph(
            "Dead-letter queue depth",
            Object.entries(props.queues).map(([which, q]) =>
              queueMetric(`${which} DLQ`, q.deadLetterQueue, "visible"),
            ),
            0,
          ),
          graph("Queue backlog and age of oldest (s)", [
            ...Object.entries(props.queues).map(([which, q]) => queueMetric(which, q.queue, "visible")),
            ...Object.entries(props.queues).map(([which, q]) => queueMetric(`${which} age`, q.queue, "age")),
          ]),
        ],
        [
          graph(
            "Consumer errors and throttles",
            Object.entries(consumerFunctions).flatMap(([name, fn]) => [
              fn.metricErrors({ statistic: "Sum", label: `${name} errors`, period: this.period }),
              fn.metricThrottles({ statistic: "Sum", label: `${name} throttles`, period: this.period }),
            ]),
          ),
          new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms, width: 16, height: 6 }),
        ],
      ],
    });
  }

  /** A metric the handlers emit (EMF), with the dimensions Powertools adds. */
  private app(
    name: MetricName,
    statistic: string,
    extraDimensions: Readonly<Record<string, string>> = {},
    label?: string,
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: name,
      dimensionsMap: { service: SERVICE_NAME, env: this.props.appEnv, ...extraDimensions },
      statistic,
      period: this.period,
      label: label ?? `${name} ${statistic}`,
    });
  }
}

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
