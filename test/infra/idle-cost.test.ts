/**
 * docs/deploy.md carries the idle cost of each environment as `npm run cost:idle` computes it from
 * the synthesized templates and scripts/cost/prices.json; this test fails when it is out of date
 * (regenerate with `npm run cost:idle -- --write`).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ENVIRONMENTS } from "../../lib/config/environments.ts";
import {
  documentedBlock,
  idleCost,
  loadPrices,
  renderTable,
  runsPerMonth,
  synthesizeTemplates,
  total,
} from "../../scripts/cost/idle-cost.ts";

const doc = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");
const prices = loadPrices();
const computed = Object.fromEntries(
  Object.values(ENVIRONMENTS).map((config) => [config.name, idleCost(synthesizeTemplates(config), prices)]),
);

describe("idle cost", () => {
  it.each(Object.keys(ENVIRONMENTS))("docs/deploy.md shows what the script computes for %s", (name) => {
    expect(documentedBlock(doc, name), "regenerate with: npm run cost:idle -- --write").toBe(
      renderTable(computed[name] ?? []),
    );
  });

  it("keeps dev under $60 a month when idle", () => {
    expect(total(computed.dev ?? [])).toBeLessThanOrEqual(60);
  });

  it("takes every price from the one dated prices file, each with its source", () => {
    expect(prices.region).toBe("us-east-1");
    expect(prices.compiled).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    for (const [key, price] of Object.entries(prices.prices)) {
      expect(price.source, key).toMatch(/^https:\/\/aws\.amazon\.com\//);
    }
    for (const config of Object.values(ENVIRONMENTS)) expect(config.region).toBe(prices.region);
  });

  it("counts what bills by the hour in the templates", () => {
    const items = (name: string) => (computed[name] ?? []).map((l) => l.item).join("\n");
    expect(items("prod")).toMatch(/NAT gateway/);
    expect(items("prod")).toMatch(/RDS Proxy/);
    expect(items("prod")).toMatch(/Interface VPC endpoints \(sqs × 3 AZ, secretsmanager × 3 AZ\)/);
    expect(items("dev")).toMatch(/NAT instance t4g\.nano/);
    expect(items("dev")).not.toMatch(/RDS Proxy|NAT gateway|Interface VPC endpoints|at its minimum/);
    expect(items("dev")).toMatch(/Aurora woken by that schedule/);
  });

  it("reads EventBridge rates", () => {
    expect(runsPerMonth("rate(1 minute)", 730)).toBe(43_800);
    expect(runsPerMonth("rate(1 day)", 730)).toBeCloseTo(30.42, 2);
    expect(runsPerMonth("rate(2 hours)", 730)).toBe(365);
    expect(runsPerMonth("cron(0 * * * ? *)", 730)).toBeUndefined();
  });
});
