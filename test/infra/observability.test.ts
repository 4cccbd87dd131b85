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
  const [[topicId] = [""]] = resources(s.app, "AWS::SNS::Topic");
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
    expect(dlqDepth.map((m) => m.label).sort()).toEqual(["analytics DLQ", "persist DLQ"]);
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

  it("alarms on errors of each consumer and of the outbox relay", () => {
    const functions = new Set(resources(s.app, "AWS::Lambda::Function").map(([id]) => id));
    const watched = alarmsWatching("Errors", "AWS/Lambda").map(([, a]) => {
      const fn = referencedId(alarmMetrics(a.Properties)[0]?.dimensions.FunctionName);
      expect(functions.has(fn ?? "")).toBe(true);
      expect(a.Properties?.Threshold).toBe(s.config.alarms.consumerErrors);
      return fn;
    });
    expect(watched).toHaveLength(3);
    expect(watched.some((id) => id?.startsWith("ConsumersPersistMessages"))).toBe(true);
    expect(watched.some((id) => id?.startsWith("ConsumersArchiveMessages"))).toBe(true);
    expect(watched.some((id) => id?.startsWith("OutboxRelay"))).toBe(true);
  });

  it("alarms when a circuit breaker opens, for every tier", () => {
    const tiers = alarmsWatching(Metric.BreakerOpened).map(
      ([, a]) => alarmMetrics(a.Properties)[0]?.dimensions.Tier,
    );
    expect(tiers.sort()).toEqual([...TIERS].sort());
  });

  it("notifies the alarm topic when an alarm fires and when it clears", () => {
    expect(alarms.length).toBe(2 + 2 + 3 + TIERS.length);
    for (const [, a] of alarms) {
      expect(a.Properties?.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(a.Properties?.OKActions).toEqual([{ Ref: topicId }]);
    }
  });

  it("keeps every log for the configured retention", () => {
    const groups = s.all.flatMap((t) => resources(t, "AWS::Logs::LogGroup"));
    expect(groups.length).toBeGreaterThan(20);
    for (const [, g] of groups) expect(g.Properties?.RetentionInDays).toBe(s.config.logRetentionDays);
  });
});
