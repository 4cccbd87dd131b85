import { describe, expect, it } from "vitest";
import { checkHealth, HealthMonitor, type TierCheck } from "../../lambdas/core/health-service.ts";
import { createWorld, ManualClock } from "../support/fakes.ts";

const setup = () => {
  const w = createWorld();
  const checks: TierCheck[] = [
    { name: "redis", durable: false, ping: () => w.cache.ping() },
    { name: "sqs", durable: true, ping: () => w.publisher.ping() },
    { name: "postgres", durable: true, ping: () => w.messages.ping() },
    { name: "clickhouse", durable: false, ping: () => w.store.ping() },
  ];
  return { w, checks };
};

describe("checkHealth", () => {
  it("is ok when every tier answers, with each tier's latency", async () => {
    const { checks } = setup();
    const report = await checkHealth(checks, "queued");
    expect(report.status).toBe("ok");
    expect(report.mode).toBe("queued");
    expect(Object.keys(report.tiers)).toEqual(["redis", "sqs", "postgres", "clickhouse"]);
    for (const tier of Object.values(report.tiers)) {
      expect(tier.status).toBe("ok");
      expect(tier.latency_ms).toBeGreaterThanOrEqual(0);
    }
    expect(report.errors).toEqual({});
  });

  it("is degraded when a tier that does not carry accepts is down, and says why in errors", async () => {
    const { w, checks } = setup();
    w.store.down = true;
    const report = await checkHealth(checks, "queued");
    expect(report.status).toBe("degraded");
    expect(report.tiers.clickhouse?.status).toBe("down");
    expect(report.tiers.postgres?.status).toBe("ok");
    expect(report.errors).toEqual({ clickhouse: "clickhouse unavailable: down" });
  });

  it("is degraded while at least one durable tier is up", async () => {
    const { w, checks } = setup();
    w.publisher.down = true;
    expect((await checkHealth(checks, "queued")).status).toBe("degraded");
  });

  it("is down when no durable tier is up, even if the others are", async () => {
    const { w, checks } = setup();
    w.publisher.down = true;
    w.messages.down = true;
    const report = await checkHealth(checks, "sync");
    expect(report.status).toBe("down");
    expect(report.mode).toBe("sync");
    expect(report.errors).toEqual({ sqs: "sqs unavailable: down", postgres: "postgres unavailable: down" });
  });

  it("reports a failure that is not an Error by its string form", async () => {
    const report = await checkHealth(
      [
        {
          name: "odd",
          durable: true,
          ping: () => Promise.reject("plain string"),
        },
      ],
      "queued",
    );
    expect(report).toMatchObject({ status: "down", errors: { odd: "plain string" } });
  });
});

describe("HealthMonitor", () => {
  it("probes at most once per period, shares a probe in flight, and does not keep a failed one", async () => {
    const clock = new ManualClock();
    let probes = 0;
    let fail = false;
    const monitor = new HealthMonitor(
      async () => {
        probes++;
        if (fail) throw new Error("probe failed");
        return { status: "ok", mode: "queued", tiers: {}, errors: {} };
      },
      clock,
      5000,
    );
    await Promise.all([monitor.report(), monitor.report(), monitor.report()]);
    expect(probes).toBe(1);
    clock.advance(4999);
    await monitor.report();
    expect(probes).toBe(1);
    clock.advance(1);
    fail = true;
    await expect(monitor.report()).rejects.toThrow("probe failed");
    fail = false;
    await monitor.report();
    expect(probes).toBe(3);
  });
});
