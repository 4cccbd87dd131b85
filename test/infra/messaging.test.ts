import { describe, expect, it } from "vitest";
import { CONSUMER_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { METRICS_NAMESPACE, Metric } from "../../lambdas/runtime/metric-names.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import {
  alarmMetrics,
  crossStackValue,
  type Json,
  referencedId,
  resources,
} from "./support/template-queries.ts";

const synthesized: Synthesized[] = [synthesize(environment("dev")), synthesize(environment("prod"))];

describe.each(synthesized)("queues and consumers ($config.name)", (s) => {
  const queues = resources(s.data, "AWS::SQS::Queue");
  const mappings = resources(s.app, "AWS::Lambda::EventSourceMapping");
  const functions = new Map(resources(s.app, "AWS::Lambda::Function"));

  it("gives every work queue a dead-letter queue, and only dead-letter queues go without", () => {
    const targets = new Set(
      queues.map(([, q]) => referencedId(q.Properties?.RedrivePolicy?.deadLetterTargetArn)).filter(Boolean),
    );
    const work = queues.filter(([, q]) => q.Properties?.RedrivePolicy !== undefined);
    expect(work).toHaveLength(3);
    expect(targets.size).toBe(3);
    for (const [id, q] of queues) {
      if (q.Properties?.RedrivePolicy === undefined) {
        expect(targets.has(id)).toBe(true);
        expect(q.Properties?.MessageRetentionPeriod).toBe(14 * 86_400);
      } else {
        expect(queues.map(([qid]) => qid)).toContain(
          referencedId(q.Properties.RedrivePolicy.deadLetterTargetArn),
        );
        expect(q.Properties.RedrivePolicy.maxReceiveCount).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it("reports partial batch failures on every SQS event source", () => {
    expect(mappings).toHaveLength(Object.keys(CONSUMER_FUNCTIONS).length);
    for (const [, m] of mappings) {
      expect(m.Properties?.FunctionResponseTypes).toEqual(["ReportBatchItemFailures"]);
    }
  });

  it("sizes each queue's visibility timeout for its consumer: ≥ 6 × timeout + batching window", () => {
    for (const [, m] of mappings) {
      const queueId = referencedId(crossStackValue(m.Properties?.EventSourceArn, s.data));
      const queue = queues.find(([id]) => id === queueId)?.[1];
      const fn = functions.get(referencedId(m.Properties?.FunctionName) ?? "");
      expect(queue).toBeDefined();
      expect(fn).toBeDefined();
      const timeout = fn?.Properties?.Timeout as number;
      const window = (m.Properties?.MaximumBatchingWindowInSeconds as number | undefined) ?? 0;
      expect(queue?.Properties?.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout + window);
    }
  });

  it("caps each consumer's concurrency and batch as the environment says", () => {
    const byFunction = new Map(
      mappings.map(([, m]) => [referencedId(m.Properties?.FunctionName) ?? "", m.Properties as Json]),
    );
    for (const which of ["persist", "analytics"] as const) {
      const fnId = [...functions.keys()].find((id) =>
        id.startsWith(`Consumers${CONSUMER_FUNCTIONS[which].id}Function`),
      );
      const mapping = byFunction.get(fnId ?? "");
      const expected = s.config.queues[which];
      expect(mapping?.ScalingConfig).toEqual({ MaximumConcurrency: expected.maxConcurrency });
      expect(mapping?.BatchSize).toBe(expected.batchSize);
      expect(mapping?.MaximumBatchingWindowInSeconds ?? 0).toBe(expected.maxBatchingWindowSeconds);
      const env = functions.get(fnId ?? "")?.Properties?.Environment?.Variables;
      expect(env?.PG_POOL_MAX).toBe(String(expected.pgPoolMax));
    }
  });

  it("lets the consumers postpone retries (ChangeMessageVisibility) on their own queue only", () => {
    for (const [fnId] of functions) {
      const policy = resources(s.app, "AWS::IAM::Policy").find(([id]) =>
        id.startsWith(fnId.replace(/Function[0-9A-F]{8}$/, "FunctionServiceRoleDefaultPolicy")),
      )?.[1];
      const statements = (policy?.Properties?.PolicyDocument.Statement ?? []) as Json[];
      const changeVisibility = statements.filter((st) =>
        [st.Action].flat().includes("sqs:ChangeMessageVisibility"),
      );
      const isConsumer = fnId.startsWith("Consumers");
      expect(changeVisibility.length).toBe(isConsumer ? 1 : 0);
    }
  });

  it("runs the outbox relay on the configured schedule", () => {
    const minutes = s.config.outboxRelay.intervalMinutes;
    const expected =
      minutes === 1
        ? "rate(1 minute)"
        : minutes % 1440 === 0
          ? `rate(${minutes / 1440} day${minutes === 1440 ? "" : "s"})`
          : undefined;
    const [[, rule] = ["", undefined]] = resources(s.app, "AWS::Events::Rule");
    expect(rule?.Properties?.State).toBe("ENABLED");
    if (expected !== undefined) expect(rule?.Properties?.ScheduleExpression).toBe(expected);
    const relay = [...functions].find(([id]) => id.startsWith("OutboxRelay"))?.[0];
    expect(referencedId(rule?.Properties?.Targets[0].Arn)).toBe(relay);
    expect(rule?.Properties?.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 0 });
  });

  it("runs the outbox relay when messages start and stop going to the outbox (SQS or Redis unreachable)", () => {
    const relay = [...functions].find(([id]) => id.startsWith("OutboxRelay"))?.[0];
    const trigger = resources(s.app, "AWS::CloudWatch::Alarm").find(
      ([, a]) => a.Properties?.AlarmName === `chat-pipeline-${s.config.name}-OutboxRelayTrigger`,
    )?.[1];
    expect(trigger !== undefined).toBe(s.config.outboxRelay.runOnQueueFallback);
    if (trigger === undefined) return;
    expect(trigger.Properties).toMatchObject({
      Threshold: 0,
      EvaluationPeriods: 1,
      TreatMissingData: "notBreaching",
    });
    const watched = alarmMetrics(trigger.Properties);
    expect(watched.map((m) => [m.metricName, m.dimensions.Tier ?? null, m.stat]).sort()).toEqual(
      [
        [Metric.BreakerOpened, "sqs", "Sum"],
        [Metric.BreakerOpened, "redis", "Sum"],
        [Metric.QueueFallbacks, null, "Sum"],
        [Metric.CacheSkipped, null, "Sum"],
        [Metric.OutboxHandoffs, null, "Sum"],
      ].sort(),
    );
    for (const m of watched) {
      expect(m.namespace).toBe(METRICS_NAMESPACE);
      expect(m.dimensions.env).toBe(s.config.name);
    }
    for (const actions of [trigger.Properties?.AlarmActions, trigger.Properties?.OKActions]) {
      expect(actions.map(referencedId)).toEqual([relay]);
    }
    // CloudWatch may invoke it, for this alarm only.
    const permissions = resources(s.app, "AWS::Lambda::Permission").filter(
      ([, p]) => p.Properties?.Principal === "lambda.alarms.cloudwatch.amazonaws.com",
    );
    expect(permissions).toHaveLength(1);
    expect(referencedId(permissions[0]?.[1].Properties?.FunctionName)).toBe(relay);
  });
});
