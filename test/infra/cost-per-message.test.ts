/**
 * `npm run cost`: the cost per million accepted messages follows the synthesized templates (memory,
 * architecture, batch sizes), the workload assumptions and the prices file; its idle part is
 * idleCost's total.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { dev, prod } from "../../lib/config/environments.ts";
import {
  idleCost,
  loadPrices,
  type PriceList,
  synthesizeTemplates,
  total,
} from "../../scripts/cost/idle-cost.ts";
import {
  BLOCK,
  loadUsage,
  type PerMessageCost,
  perMessageCost,
  replaceCostBlock,
  USAGE_FILE,
  type Usage,
} from "../../scripts/cost/per-message.ts";

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

const prices = loadPrices();
const dir = mkdtempSync(join(tmpdir(), "cost-per-message-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** The defaults alone, whatever the benchmark last measured. */
const usage = loadUsage(USAGE_FILE, join(dir, "absent.json"));
const templates = { dev: synthesizeTemplates(dev), prod: synthesizeTemplates(prod) };

const lineOf = (cost: PerMessageCost, pattern: RegExp) => {
  const found = cost.lines.filter((l) => pattern.test(l.item));
  expect(found, String(pattern)).toHaveLength(1);
  return found[0] as PerMessageCost["lines"][number];
};
const fnByDescription = (template: Json, description: string): Json =>
  Object.values(template.Resources as Record<string, Json>).find(
    (r) => r.Type === "AWS::Lambda::Function" && r.Properties?.Description === description,
  );
const withValues = (values: Partial<Usage["values"]>): Usage => ({
  values: { ...usage.values, ...values },
  measured: {},
});

describe("cost per million messages", () => {
  it.each(["dev", "prod"] as const)("gives %s a positive total and idleCost's idle total", (name) => {
    const cost = perMessageCost(templates[name], prices, usage);
    expect(cost.totalPerMillion).toBeGreaterThan(0);
    expect(cost.totalPerMillion).toBeCloseTo(
      cost.lines.reduce((n, l) => n + l.usdPerMillion, 0),
      10,
    );
    expect(cost.idleUsdPerMonth).toBe(total(idleCost(templates[name], prices)));
  });

  it.each(["dev", "prod"] as const)(
    "takes %s's Lambda GB-s from the template's memory and architecture",
    (name) => {
      const fn = fnByDescription(templates[name].app, "POST /api/threads/{threadId}/messages");
      const mb = Number(fn.Properties.MemorySize);
      expect(fn.Properties.Architectures).toEqual(["arm64"]);
      const line = lineOf(perMessageCost(templates[name], prices, usage), /^Lambda GB-s: accept/);
      expect(line.item).toContain(`${mb} MB, arm64`);
      expect(line.quantity).toBeCloseTo((1_000_000 * usage.values.acceptFunctionMs * mb) / 1000 / 1024, 6);
      expect(line.usdPerMillion).toBeCloseTo(
        line.quantity * (prices.prices.lambdaArmGbSecond?.usd as number),
        10,
      );

      // An x86_64 function is priced at the x86_64 rate.
      const x86 = structuredClone(templates[name]);
      fnByDescription(x86.app, "POST /api/threads/{threadId}/messages").Properties.Architectures = ["x86_64"];
      const x86Line = lineOf(perMessageCost(x86, prices, usage), /^Lambda GB-s: accept/);
      expect(x86Line.item).toContain(`${mb} MB, x86_64`);
      expect(x86Line.usdPerMillion).toBeCloseTo(
        line.quantity * (prices.prices.lambdaX86GbSecond?.usd as number),
        10,
      );
    },
  );

  it("invokes the persist consumer once per achieved batch, at most the template's BatchSize", () => {
    for (const batch of [5, 25, 50]) {
      const cost = perMessageCost(templates.dev, prices, withValues({ persistMessagesPerBatch: batch }));
      expect(lineOf(cost, /^Lambda requests: persist consumer/).quantity).toBeCloseTo(1_000_000 / batch, 6);
    }
    // dev's mapping has BatchSize 50: 80 achieved is capped there.
    const capped = perMessageCost(templates.dev, prices, withValues({ persistMessagesPerBatch: 80 }));
    expect(lineOf(capped, /^Lambda requests: persist consumer/).quantity).toBeCloseTo(20_000, 6);
  });

  it("follows a changed price by the expected amount", () => {
    const before = perMessageCost(templates.prod, prices, usage);
    const copy = structuredClone(prices) as PriceList & { prices: Record<string, { usd: number }> };
    (copy.prices.sqsStandardRequestMillion as { usd: number }).usd += 0.1;
    const after = perMessageCost(templates.prod, copy, usage);
    const pattern = /^SQS persist queue: SendMessage /;
    const delta = lineOf(after, pattern).usdPerMillion - lineOf(before, pattern).usdPerMillion;
    expect(delta).toBeCloseTo((lineOf(before, pattern).quantity * 0.1) / 1_000_000, 10);
    expect(after.idleUsdPerMonth).toBe(before.idleUsdPerMonth);
  });

  it("reads the egress and endpoints from the templates", () => {
    const items = (name: "dev" | "prod") =>
      perMessageCost(templates[name], prices, usage)
        .lines.map((l) => l.item)
        .join("\n");
    expect(items("prod")).toMatch(/NAT gateway data processing \(PostToConnection, ClickHouse inserts\)/);
    expect(items("prod")).toMatch(/SQS interface endpoint/);
    expect(items("prod")).toMatch(/RDS Proxy/);
    expect(items("dev")).toMatch(/Inter-AZ transfer to the NAT instance \(SQS sends/);
    expect(items("dev")).not.toMatch(/RDS Proxy|NAT gateway/);
  });

  it("takes the values the benchmark measured, and only those", () => {
    const measured = join(dir, "usage.json");
    writeFileSync(
      measured,
      JSON.stringify({
        date: "2026-12-01",
        source: "npm run bench",
        acceptFunctionMs: 42,
        consumerMsPerBatch: {},
      }),
    );
    const loaded = loadUsage(USAGE_FILE, measured);
    expect(loaded.values.acceptFunctionMs).toBe(42);
    expect(loaded.measured).toEqual({ acceptFunctionMs: "2026-12-01, npm run bench" });
    expect(loaded.values.persistMessagesPerBatch).toBe(usage.values.persistMessagesPerBatch);
  });

  it("replaces only the generated block", () => {
    const doc = `before\n${BLOCK.start}\nold\n${BLOCK.end}\nafter\n`;
    expect(replaceCostBlock(doc, "new")).toBe(`before\n${BLOCK.start}\nnew\n${BLOCK.end}\nafter\n`);
  });
});
