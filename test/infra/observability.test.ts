import type { CfnElement } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { METRICS_NAMESPACE, Metric } from "../../lambdas/runtime/metric-names.ts";
import { TIERS } from "../../lib/constructs/observability.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import {
  alarmMetrics,
  crossStackValue,
  dashboardBody,
  dashboardMetrics,
  type Json,
  type MetricRef,
  referencedId,
  resources,
} from "./support/template-queries.ts";

const synthesized: Synthesized[] = [synthesize(environment("dev")), synthesize(environment("prod"))];
const EMITTED = new Set<string>(Object.values(Metric));

describe.each(synthesized)("observability ($config.name)", (s) => {
  const alarms = resources(s.app, "AWS::CloudWatch::Alarm");
  const [[, dashboard] = ["", undefined]] = resources(s.app, "AWS::CloudWatch::Dashboard");
  const drawn = dashboardMetrics(dashboardBody(dashboard?.Properties?.DashboardBody));
  const [[topicId] = [""]] = resources(s.network, "AWS::SNS::Topic");
  const networkAlarms = resources(s.network, "AWS::CloudWatch::Alarm");
  const named = (suffix: string) =>
    alarms.find(([, a]) => a.Properties?.AlarmName === `chat-pipeline-${s.config.name}-${suffix}`)?.[1];
  const alarmsWatching = (metricName: string, namespace = METRICS_NAMESPACE) =>
    alarms.filter(([, a]) =>
      alarmMetrics(a.Properties).some((m) => m.metricName === metricName && m.namespace === namespace),
    );

  /** An application metric exists when the handlers emit it with exactly these dimensions. */
  const expectEmitted = (m: MetricRef) => {
    expect(EMITTED.has(m.metricName), `${m.metricName} is not in Metric.*`).toBe(true);
    const { Tier, ...common } = m.dimensions as Record<string, Json>;
    expect(common).toEqual({ service: "chat-pipeline", env: s.config.name });
    if (m.metricName === Metric.BreakerOpened) expect(TIERS).toContain(Tier);
    else expect(Tier).toBeUndefined();
  };

  it("alarms only on metrics the handlers emit, with their dimensions", () => {
    const app = alarms
      .flatMap(([, a]) => alarmMetrics(a.Properties))
      .filter((m) => m.namespace === METRICS_NAMESPACE);
    expect(app.length).toBeGreaterThan(0);
    for (const m of app) expectEmitted(m);
  });

  it("draws only metrics the handlers emit, with their dimensions", () => {
    const app = drawn.filter((m) => m.namespace === METRICS_NAMESPACE);
    expect(app.length).toBeGreaterThan(0);
    for (const m of app) expectEmitted(m);
  });

  it("draws accept latency and each tier's time at p50 and p99", () => {
    const has = (name: string, stat: string) =>
      drawn.some((m) => m.namespace === METRICS_NAMESPACE && m.metricName === name && m.stat === stat);
    for (const name of [
      Metric.AcceptLatency,
      Metric.AcceptCacheTime,
      Metric.AcceptQueueTime,
      Metric.AcceptDatabaseTime,
      Metric.AcceptFanoutTime,
      Metric.PersistLag,
    ]) {
      expect(has(name, "p50"), `${name} p50`).toBe(true);
      expect(has(name, "p99"), `${name} p99`).toBe(true);
    }
  });

  it("draws cache hits and misses, failovers, deliveries, gone connections and DLQ depth", () => {
    const names = new Set(drawn.map((m) => `${m.namespace}/${m.metricName}`));
    for (const name of [
      Metric.CacheHits,
      Metric.CacheMisses,
      Metric.CacheSkipped,
      Metric.QueueFallbacks,
      Metric.AcceptUnavailable,
      Metric.BreakerOpened,
      Metric.WebSocketDelivered,
      Metric.WebSocketGone,
    ]) {
      expect(names.has(`${METRICS_NAMESPACE}/${name}`), name).toBe(true);
    }
    const dlqDepth = drawn.filter(
      (m) =>
        m.namespace === "AWS/SQS" &&
        m.metricName === "ApproximateNumberOfMessagesVisible" &&
        m.label?.endsWith("DLQ") === true,
    );
    expect(dlqDepth.map((m) => m.label).sort()).toEqual(["analytics DLQ", "erasure DLQ", "persist DLQ"]);
  });

  it("alarms on accept p99 and persist lag p99 at the configured thresholds", () => {
    const [[, accept] = ["", undefined]] = alarmsWatching(Metric.AcceptLatency);
    expect(alarmMetrics(accept?.Properties)[0]?.stat).toBe("p99");
    expect(accept?.Properties?.Threshold).toBe(s.config.alarms.acceptLatencyP99Ms);
    const [[, lag] = ["", undefined]] = alarmsWatching(Metric.PersistLag);
    expect(alarmMetrics(lag?.Properties)[0]?.stat).toBe("p99");
    expect(lag?.Properties?.Threshold).toBe(s.config.alarms.persistLagP99Ms);
  });

  it("alarms when any dead-letter queue holds a message", () => {
    const dlqs = resources(s.data, "AWS::SQS::Queue").filter(
      ([, q]) => q.Properties?.RedrivePolicy === undefined,
    );
    const watched = alarmsWatching("ApproximateNumberOfMessagesVisible", "AWS/SQS").map(([, a]) => {
      expect(a.Properties?.Threshold).toBe(0);
      expect(a.Properties?.ComparisonOperator).toBe("GreaterThanThreshold");
      const queueName = alarmMetrics(a.Properties)[0]?.dimensions.QueueName;
      return referencedId(crossStackValue(queueName, s.data));
    });
    expect(watched.sort()).toEqual(dlqs.map(([id]) => id).sort());
  });

  it("alarms on errors of each consumer (the erasure worker too) and of the outbox relay", () => {
    const functions = new Set(resources(s.app, "AWS::Lambda::Function").map(([id]) => id));
    const single = alarmsWatching("Errors", "AWS/Lambda").filter(
      ([, a]) => a.Properties?.MetricName === "Errors",
    );
    const watched = single.map(([, a]) => {
      const fn = referencedId(alarmMetrics(a.Properties)[0]?.dimensions.FunctionName);
      expect(functions.has(fn ?? "")).toBe(true);
      expect(a.Properties?.Threshold).toBe(s.config.alarms.consumerErrors);
      return fn;
    });
    expect(watched).toHaveLength(4);
    expect(watched.some((id) => id?.startsWith("ConsumersPersistMessages"))).toBe(true);
    expect(watched.some((id) => id?.startsWith("ConsumersArchiveMessages"))).toBe(true);
    expect(watched.some((id) => id?.startsWith("ConsumersRunErasures"))).toBe(true);
    expect(watched.some((id) => id?.startsWith("OutboxRelay"))).toBe(true);
  });

  it("alarms when a circuit breaker opens, for every tier", () => {
    const tiers = alarmsWatching(Metric.BreakerOpened)
      .filter(([, a]) => a.Properties?.AlarmName !== `chat-pipeline-${s.config.name}-OutboxRelayTrigger`)
      .map(([, a]) => alarmMetrics(a.Properties)[0]?.dimensions.Tier);
    expect(tiers.sort()).toEqual([...TIERS].sort());
  });

  it("alarms on HTTP API 5xx answers", () => {
    const a = named("HttpApi5xx")?.Properties;
    expect(a).toMatchObject({ Namespace: "AWS/ApiGateway", MetricName: "5xx", Statistic: "Sum" });
    expect(a?.Threshold).toBe(s.config.alarms.api5xx);
    const [[httpApiId] = [""]] = resources(s.app, "AWS::ApiGatewayV2::Api").filter(
      ([, r]) => r.Properties?.ProtocolType === "HTTP",
    );
    expect(alarmMetrics(a)[0]?.dimensions.ApiId).toEqual({ Ref: httpApiId });
  });

  it("alarms on failed invocations of the route functions, every one of them, HTTP and WebSocket apart", () => {
    const routeFunctions = (api: "httpApi" | "webSocketApi") =>
      [...s.pipeline.app[api].functions.values()]
        .map((f) => s.pipeline.app.getLogicalId(f.function.node.defaultChild as CfnElement))
        .sort();
    for (const [suffix, api] of [
      ["HttpRouteFunctionErrors", "httpApi"],
      ["WebSocketRouteFunctionErrors", "webSocketApi"],
    ] as const) {
      // One alarm per 10 functions (CloudWatch's limit for a metric-math alarm).
      const group = alarms
        .map(([, a]) => a.Properties)
        .filter((a) => new RegExp(`^chat-pipeline-${s.config.name}-${suffix}\\d*$`).test(a?.AlarmName));
      expect(group.length).toBe(Math.ceil(routeFunctions(api).length / 10));
      const watched: (string | undefined)[] = [];
      for (const a of group) {
        expect(a?.Threshold).toBe(s.config.alarms.routeFunctionErrors);
        const metrics = alarmMetrics(a);
        expect(metrics.every((m) => m.namespace === "AWS/Lambda" && m.metricName === "Errors")).toBe(true);
        watched.push(...metrics.map((m) => referencedId(m.dimensions.FunctionName)));
        // The alarm watches their sum.
        const expression = (a.Metrics as Json[]).find(
          (m) => m.ReturnData !== false && m.Expression,
        )?.Expression;
        expect(expression).toBe(metrics.map((_, i) => `m${i}`).join(" + "));
      }
      expect(watched.sort()).toEqual(routeFunctions(api));
    }
  });

  it("alarms on throttled invocations (the account's concurrency quota)", () => {
    const a = named("LambdaThrottles")?.Properties;
    expect(a).toMatchObject({ Namespace: "AWS/Lambda", MetricName: "Throttles", Threshold: 0 });
    expect(a?.Dimensions).toBeUndefined();
  });

  it("alarms on the age of the oldest message of each main queue", () => {
    const mainQueues = resources(s.data, "AWS::SQS::Queue")
      .filter(([, q]) => q.Properties?.RedrivePolicy !== undefined)
      .map(([id]) => id);
    const watched = alarmsWatching("ApproximateAgeOfOldestMessage", "AWS/SQS").map(([, a]) => {
      expect(a.Properties?.Threshold).toBe(s.config.alarms.queueOldestMessageSeconds);
      expect(a.Properties?.Statistic).toBe("Maximum");
      return referencedId(crossStackValue(alarmMetrics(a.Properties)[0]?.dimensions.QueueName, s.data));
    });
    expect(watched.sort()).toEqual(mainQueues.sort());
  });

  it("alarms on Aurora capacity and ElastiCache throttling, by the stores' physical names", () => {
    const [[, cluster] = ["", undefined]] = resources(s.data, "AWS::RDS::DBCluster");
    const aurora = named("AuroraCapacity")?.Properties;
    expect(aurora).toMatchObject({ Namespace: "AWS/RDS", MetricName: "ACUUtilization" });
    expect(aurora?.Threshold).toBe(s.config.alarms.auroraCapacityPercent);
    expect(alarmMetrics(aurora)[0]?.dimensions).toEqual({
      DBClusterIdentifier: cluster?.Properties?.DBClusterIdentifier,
    });
    const [[, cache] = ["", undefined]] = resources(s.data, "AWS::ElastiCache::ServerlessCache");
    const throttled = named("CacheThrottled")?.Properties;
    expect(throttled).toMatchObject({
      Namespace: "AWS/ElastiCache",
      MetricName: "ThrottledCmds",
      Threshold: 0,
    });
    expect(alarmMetrics(throttled)[0]?.dimensions).toEqual({
      clusterId: cache?.Properties?.ServerlessCacheName,
    });
  });

  it("alarms on RDS Proxy session pinning and borrow latency when there is a proxy", () => {
    const proxies = resources(s.data, "AWS::RDS::DBProxy");
    const pinning = named("ProxySessionPinning")?.Properties;
    const borrow = named("ProxyBorrowLatency")?.Properties;
    if (s.config.database.connection === "direct") {
      expect(proxies).toEqual([]);
      expect(pinning).toBeUndefined();
      expect(borrow).toBeUndefined();
      return;
    }
    const proxyName = proxies[0]?.[1].Properties?.DBProxyName;
    expect(pinning).toMatchObject({
      MetricName: "DatabaseConnectionsCurrentlySessionPinned",
      Dimensions: [{ Name: "ProxyName", Value: proxyName }],
      Threshold: 0,
    });
    expect(borrow).toMatchObject({
      MetricName: "DatabaseConnectionsBorrowLatency",
      Dimensions: [{ Name: "ProxyName", Value: proxyName }],
      Threshold: s.config.alarms.proxyBorrowLatencyMs * 1000,
    });
  });

  it("alarms on NAT port allocation errors of each NAT gateway, or on the NAT instance's status checks", () => {
    const gateways = resources(s.network, "AWS::EC2::NatGateway").map(([id]) => id);
    const portAlarms = networkAlarms.filter(([, a]) => a.Properties?.MetricName === "ErrorPortAllocation");
    expect(
      portAlarms.map(([, a]) => referencedId(alarmMetrics(a.Properties)[0]?.dimensions.NatGatewayId)).sort(),
    ).toEqual(gateways.sort());
    const instances = resources(s.network, "AWS::EC2::Instance").map(([id]) => id);
    const statusAlarms = networkAlarms.filter(([, a]) => a.Properties?.MetricName === "StatusCheckFailed");
    expect(
      statusAlarms.map(([, a]) => referencedId(alarmMetrics(a.Properties)[0]?.dimensions.InstanceId)),
    ).toEqual(instances);
    expect(gateways.length + instances.length).toBeGreaterThan(0);
  });

  it("notifies the alarm topic (Network stack) when an alarm fires and when it clears", () => {
    const trigger = `chat-pipeline-${s.config.name}-OutboxRelayTrigger`;
    const paging = [...alarms, ...networkAlarms].filter(([, a]) => a.Properties?.AlarmName !== trigger);
    expect(paging.length).toBeGreaterThan(20);
    const topic = (action: Json) =>
      action?.Ref !== undefined ? action.Ref : referencedId(crossStackValue(action, s.network));
    for (const [, a] of paging) {
      expect(a.Properties?.AlarmActions.map(topic)).toEqual([topicId]);
      expect(a.Properties?.OKActions.map(topic)).toEqual([topicId]);
    }
    const emails = resources(s.network, "AWS::SNS::Subscription").map(([, r]) => r.Properties);
    expect(emails.map((e) => e?.Endpoint).sort()).toEqual([...s.config.alarms.emails].sort());
    for (const e of emails) expect(e).toMatchObject({ Protocol: "email", TopicArn: { Ref: topicId } });
  });

  it("keeps every log for the configured retention", () => {
    const groups = s.all.flatMap((t) => resources(t, "AWS::Logs::LogGroup"));
    expect(groups.length).toBeGreaterThan(20);
    for (const [, g] of groups) expect(g.Properties?.RetentionInDays).toBe(s.config.logRetentionDays);
  });
});

describe("alarm endpoints", () => {
  it("every alarm also notifies the SNS topics the configuration names", () => {
    const chatOps = "arn:aws:sns:us-east-1:111111111111:chat-ops";
    const s = synthesize({
      ...environment("dev"),
      alarms: { ...environment("dev").alarms, snsTopicArns: [chatOps] },
    });
    const alarms = [
      ...resources(s.app, "AWS::CloudWatch::Alarm"),
      ...resources(s.network, "AWS::CloudWatch::Alarm"),
    ].filter(([, a]) => !String(a.Properties?.AlarmName).endsWith("OutboxRelayTrigger"));
    expect(alarms.length).toBeGreaterThan(0);
    for (const [, a] of alarms) {
      expect(a.Properties?.AlarmActions).toContain(chatOps);
      expect(a.Properties?.OKActions).toContain(chatOps);
    }
  });
});
