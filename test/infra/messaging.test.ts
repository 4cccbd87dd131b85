import { describe, expect, it } from "vitest";
import { CONSUMER_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import { crossStackValue, type Json, referencedId, resources } from "./support/template-queries.ts";

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
    expect(work).toHaveLength(2);
    expect(targets.size).toBe(2);
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

  it("runs the outbox relay every minute", () => {
    s.app.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(1 minute)",
      State: "ENABLED",
    });
  });
});
