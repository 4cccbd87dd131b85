/**
 * The dashboard and the alarms. Application metrics come from the handlers' EMF output
 * (namespace and names from lambdas/runtime/metric-names.ts, dimensions `service` + `env`, plus
 * `Tier` for BreakerOpened); queue depth and age, function errors, API 5xx, Aurora, RDS Proxy and
 * ElastiCache from their AWS namespaces. Every alarm notifies the environment's alarm targets
 * (AlarmTopic), both when it fires and when it clears. The NAT alarms live with the NAT devices, in
 * the Network stack (EgressAlarms), so that the App stack never holds a reference to them.
 */
import { Duration } from "aws-cdk-lib";
import type * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sns from "aws-cdk-lib/aws-sns";
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
import { notifyTargets } from "./alarm-topic.ts";

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
  /** Failed invocations of the route functions (HTTP together, WebSocket together) per period. @default 0 */
  readonly routeFunctionErrors?: number;
  /** HTTP API 5xx answers per period. @default 5 */
  readonly api5xx?: number;
  /** Age of the oldest message of a main queue (s). @default 300 */
  readonly queueOldestMessageSeconds?: number;
  /** Aurora capacity used (ACUUtilization, %). @default 90 */
  readonly auroraCapacityPercent?: number;
  /** Average RDS Proxy connection borrow latency (ms). @default 100 */
  readonly proxyBorrowLatencyMs?: number;
  /** @default Duration.minutes(5) */
  readonly period?: Duration;
  /** @default 2 */
  readonly evaluationPeriods?: number;
}

export interface ObservedQueue {
  readonly queue: sqs.IQueue;
  readonly deadLetterQueue: sqs.IQueue;
}

/** The database tier, by physical name (no reference to the Data stack's resources). */
export interface ObservedDatabase {
  /** Aurora cluster identifier. */
  readonly clusterIdentifier: string;
  /** RDS Proxy name, when the functions use one. */
  readonly proxyName?: string;
}

export interface ObservabilityProps {
  /** Value of the `env` dimension (APP_ENV). */
  readonly appEnv: string;
  /** What every alarm notifies (AlarmTopic.targets). */
  readonly alarmTargets: readonly sns.ITopic[];
  readonly queues: {
    readonly persist: ObservedQueue;
    readonly analytics: ObservedQueue;
    readonly erasure: ObservedQueue;
  };
  readonly consumers: {
    readonly persist: lambda.IFunction;
    readonly analytics: lambda.IFunction;
    readonly erasure: lambda.IFunction;
  };
  readonly outboxRelay: lambda.IFunction;
  readonly httpApi: apigwv2.IHttpApi;
  /** The route functions of each API (one alarm sums the failed invocations of up to 10 of them). */
  readonly routeFunctions: {
    readonly http: readonly lambda.IFunction[];
    readonly webSocket: readonly lambda.IFunction[];
  };
  readonly database: ObservedDatabase;
  /** ElastiCache Serverless cache name. */
  readonly cacheName: string;
  readonly thresholds?: AlarmThresholds;
}

/** An alarm that notifies `targets` when it fires and when it clears. */
export const notifyingAlarm = (
  scope: Construct,
  id: string,
  props: cloudwatch.AlarmProps & { readonly targets: readonly sns.ITopic[] },
): cloudwatch.Alarm => {
  const { targets, ...alarmProps } = props;
  const alarm = new cloudwatch.Alarm(scope, id, {
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    ...alarmProps,
  });
  notifyTargets(alarm, targets);
  return alarm;
};

export class Observability extends Construct {
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
    const routeErrors = t.routeFunctionErrors ?? 0;
    const api5xx = t.api5xx ?? 5;
    const oldestMessage = t.queueOldestMessageSeconds ?? 300;
    const capacityPercent = t.auroraCapacityPercent ?? 90;
    const borrowLatencyMs = t.proxyBorrowLatencyMs ?? 100;
    const evaluationPeriods = t.evaluationPeriods ?? 2;
    this.period = t.period ?? Duration.minutes(5);
    const problems = new Problems();
    problems.range("acceptLatencyP99Ms", acceptP99, 1, 60_000);
    problems.range("persistLagP99Ms", persistLagP99, 1, 86_400_000);
    problems.integer("consumerErrors", consumerErrors, 0, 1_000_000);
    problems.integer("routeFunctionErrors", routeErrors, 0, 1_000_000);
    problems.integer("api5xx", api5xx, 0, 1_000_000);
    problems.integer("queueOldestMessageSeconds", oldestMessage, 60, 1_209_600);
    problems.range("auroraCapacityPercent", capacityPercent, 1, 100);
    problems.range("proxyBorrowLatencyMs", borrowLatencyMs, 1, 60_000);
    problems.check(props.alarmTargets.length >= 1, "alarmTargets must not be empty");
    problems.integer("evaluationPeriods", evaluationPeriods, 1, 100);
    problems.check(
      [1, 5, 10, 15, 30, 60].includes(this.period.toMinutes()),
      "period must be 1, 5, 10, 15, 30 or 60 minutes",
    );
    problems.throwIfAny(`props of ${this.node.path}`);

    // ------------------------------------------------------------------ alarms
    const alarms: cloudwatch.Alarm[] = [];
    const alarm = (
      name: string,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
      periods = evaluationPeriods,
    ): cloudwatch.Alarm => {
      const a = notifyingAlarm(this, name, {
        alarmName: `chat-pipeline-${props.appEnv}-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: periods,
        targets: props.alarmTargets,
      });
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
      ErasureWorker: props.consumers.erasure,
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

    alarm(
      "OutboxParked",
      this.app(Metric.OutboxParked, "Maximum"),
      0,
      "Outbox entries failed on their own too often and are parked: inspect last_error, fix, release (docs/reliability.md)",
      1,
    );

    // The APIs: answers that failed, and route functions that failed or were throttled.
    alarm(
      "HttpApi5xx",
      props.httpApi.metricServerError({ statistic: "Sum", period: this.period }),
      api5xx,
      `HTTP API: more than ${api5xx} 5xx answers per ${this.period.toMinutes()} min (503 = a tier is down; 500/502/504 = a function failed or timed out)`,
    );
    const sumOf = (label: string, metrics: readonly cloudwatch.IMetric[]) =>
      new cloudwatch.MathExpression({
        expression: metrics.map((_, i) => `m${i}`).join(" + ") || "0",
        usingMetrics: Object.fromEntries(metrics.map((m, i) => [`m${i}`, m])),
        period: this.period,
        label,
      });
    // An alarm on a metric math expression reads at most 10 metrics: one alarm per 10 functions.
    for (const [api, fns] of [
      ["Http", props.routeFunctions.http],
      ["WebSocket", props.routeFunctions.webSocket],
    ] as const) {
      const groups = chunks(fns, MAX_ALARM_METRICS);
      groups.forEach((group, i) => {
        alarm(
          `${api}RouteFunctionErrors${groups.length > 1 ? i + 1 : ""}`,
          sumOf(
            `${api} route function errors`,
            group.map((fn) => fn.metricErrors({ statistic: "Sum", period: this.period })),
          ),
          routeErrors,
          `${api} route functions: more than ${routeErrors} failed invocations (crash or timeout) per ${this.period.toMinutes()} min`,
        );
      });
    }
    // Account-wide (one account per environment, docs/deploy.md): a throttled function means the
    // account's concurrency quota is reached, e.g. the 10 of a new account.
    alarm(
      "LambdaThrottles",
      new cloudwatch.Metric({
        namespace: "AWS/Lambda",
        metricName: "Throttles",
        statistic: "Sum",
        period: this.period,
      }),
      0,
      "Lambda throttled invocations in this account and region: concurrency quota reached (docs/deploy.md, Lambda concurrency)",
      1,
    );

    // The queues: a backlog that does not drain.
    for (const [which, q] of Object.entries(props.queues)) {
      alarm(
        `${capitalize(which)}QueueOldestMessage`,
        q.queue.metricApproximateAgeOfOldestMessage({ statistic: "Maximum", period: this.period }),
        oldestMessage,
        `The oldest message of the ${which} queue is older than ${oldestMessage} s: its consumer is not keeping up or keeps failing`,
      );
    }

    // PostgreSQL: capacity, and RDS Proxy connection pinning and borrow latency.
    const db = props.database;
    alarm(
      "AuroraCapacity",
      new cloudwatch.Metric({
        namespace: "AWS/RDS",
        metricName: "ACUUtilization",
        dimensionsMap: { DBClusterIdentifier: db.clusterIdentifier },
        statistic: "Maximum",
        period: this.period,
      }),
      capacityPercent,
      `Aurora uses more than ${capacityPercent}% of its maximum capacity: raise database.maxCapacity`,
    );
    if (db.proxyName !== undefined) {
      const proxy = (metricName: string, statistic: string) =>
        new cloudwatch.Metric({
          namespace: "AWS/RDS",
          metricName,
          dimensionsMap: { ProxyName: db.proxyName as string },
          statistic,
          period: this.period,
        });
      alarm(
        "ProxySessionPinning",
        proxy("DatabaseConnectionsCurrentlySessionPinned", "Maximum"),
        0,
        "RDS Proxy pinned a database connection to a session (session state or a startup parameter): multiplexing is lost",
      );
      alarm(
        "ProxyBorrowLatency",
        proxy("DatabaseConnectionsBorrowLatency", "Average"),
        borrowLatencyMs * 1000,
        `RDS Proxy takes more than ${borrowLatencyMs} ms on average to lend a database connection (microseconds)`,
      );
    }

    // The cache: commands refused because the workload grew faster than ElastiCache scales.
    alarm(
      "CacheThrottled",
      new cloudwatch.Metric({
        namespace: "AWS/ElastiCache",
        metricName: "ThrottledCmds",
        dimensionsMap: { clusterId: props.cacheName },
        statistic: "Sum",
        period: this.period,
      }),
      0,
      "ElastiCache throttled commands (each one is a Redis call the accept path skipped or retried)",
    );
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
            this.app(Metric.RequestsShed, "Sum", {}, "503: shed, process overloaded"),
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
            this.app(Metric.OutboxDeferred, "Sum"),
            this.app(Metric.OutboxParked, "Maximum"),
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

/** CloudWatch's limit on the metrics of one metric-math alarm. */
const MAX_ALARM_METRICS = 10;

const chunks = <T>(items: readonly T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

export interface EgressAlarmsProps {
  readonly appEnv: string;
  readonly alarmTargets: readonly sns.ITopic[];
  readonly natGatewayIds: readonly string[];
  readonly natInstance?: ec2.IInstance;
}

/**
 * The NAT alarms, next to the NAT devices (Network stack): port allocation errors of each NAT
 * gateway (connections the functions could not open), or the NAT instance failing its status checks.
 */
export class EgressAlarms extends Construct {
  readonly alarms: readonly cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: EgressAlarmsProps) {
    super(scope, id);
    const alarms = props.natGatewayIds.map((natGatewayId, i) =>
      notifyingAlarm(this, `NatPortAllocation${i + 1}`, {
        alarmName: `chat-pipeline-${props.appEnv}-NatPortAllocation${i + 1}`,
        alarmDescription:
          "NAT gateway could not allocate a source port: connections to ClickHouse, JWKS or @connections failed",
        metric: new cloudwatch.Metric({
          namespace: "AWS/NATGateway",
          metricName: "ErrorPortAllocation",
          dimensionsMap: { NatGatewayId: natGatewayId },
          statistic: "Sum",
          period: Duration.minutes(5),
        }),
        threshold: 0,
        evaluationPeriods: 1,
        targets: props.alarmTargets,
      }),
    );
    if (props.natInstance !== undefined) {
      alarms.push(
        notifyingAlarm(this, "NatInstanceStatus", {
          alarmName: `chat-pipeline-${props.appEnv}-NatInstanceStatus`,
          alarmDescription:
            "The NAT instance fails its status checks: the functions cannot reach ClickHouse, JWKS or @connections",
          metric: new cloudwatch.Metric({
            namespace: "AWS/EC2",
            metricName: "StatusCheckFailed",
            dimensionsMap: { InstanceId: props.natInstance.instanceId },
            statistic: "Maximum",
            period: Duration.minutes(1),
          }),
          threshold: 0,
          evaluationPeriods: 3,
          targets: props.alarmTargets,
        }),
      );
    }
    this.alarms = alarms;
  }
}
