/**
 * The LocalStack path (localstack/) says what the dev environment says: the ClickHouse secret under
 * the name the dev configuration reads, and queues with the attributes of the dev templates.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { environment, synthesize } from "./support/synth.ts";
import { type Json, resources } from "./support/template-queries.ts";

const dev = synthesize(environment("dev"));
const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), "utf8");

describe("localstack/", () => {
  it("creates the ClickHouse secret under the name the dev configuration reads", () => {
    const names = [...read("localstack/README.md").matchAll(/create-secret --name (\S+)/g)].map((m) => m[1]);
    expect(names).toEqual([dev.config.clickhouse.secretName]);
  });

  it("creates the queues with the dev templates' visibility timeout, maxReceiveCount and retention", () => {
    const hook = read("localstack/init/ready.d/10-queues.sh");
    const declared = Object.fromEntries(
      [...hook.matchAll(/^queue (\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/gm)].map((m) => [
        m[1],
        { visibility: Number(m[2]), maxReceive: Number(m[3]), retention: Number(m[4]) },
      ]),
    );
    expect(Object.keys(declared).sort()).toEqual(["chat-analytics", "chat-erasure", "chat-persist"]);
    const queue = (which: "Persist" | "Analytics" | "Erasure"): Json =>
      resources(dev.data, "AWS::SQS::Queue").find(([id]) => id.startsWith(`Queues${which}Queue`))?.[1]
        .Properties;
    for (const [name, which] of [
      ["chat-persist", "Persist"],
      ["chat-analytics", "Analytics"],
      ["chat-erasure", "Erasure"],
    ] as const) {
      const q = queue(which);
      expect(declared[name], name).toEqual({
        visibility: q.VisibilityTimeout,
        maxReceive: q.RedrivePolicy.maxReceiveCount,
        retention: q.MessageRetentionPeriod,
      });
    }
    // Dead-letter queues keep 14 days, as in the templates.
    expect(hook).toContain("MessageRetentionPeriod=1209600");
    const dlqRetention = resources(dev.data, "AWS::SQS::Queue")
      .filter(([, q]) => q.Properties?.RedrivePolicy === undefined)
      .map(([, q]) => q.Properties?.MessageRetentionPeriod);
    expect(new Set(dlqRetention)).toEqual(new Set([1_209_600]));
  });
});
