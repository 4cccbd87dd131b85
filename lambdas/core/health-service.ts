/** Each tier's status and latency, and whether the system can accept messages. */
import { describeError } from "./errors.ts";

export interface TierCheck {
  readonly name: string;
  /** Tiers that make accepting possible; the others only degrade reads or analytics. */
  readonly durable: boolean;
  readonly ping: () => Promise<void>;
}

export interface TierStatus {
  readonly status: "ok" | "down";
  readonly latency_ms: number;
}

export interface HealthReport {
  readonly status: "ok" | "degraded" | "down";
  readonly mode: string;
  readonly tiers: Record<string, TierStatus>;
  /** Why tiers are down: for the logs only, never for the response body. */
  readonly errors: Record<string, string>;
}

export const checkHealth = async (checks: readonly TierCheck[], mode: string): Promise<HealthReport> => {
  const results = await Promise.all(
    checks.map(async (check): Promise<[TierCheck, TierStatus, string?]> => {
      const start = performance.now();
      try {
        await check.ping();
        return [check, { status: "ok", latency_ms: round(performance.now() - start) }];
      } catch (error) {
        return [
          check,
          { status: "down", latency_ms: round(performance.now() - start) },
          describeError(error),
        ];
      }
    }),
  );
  const durableUp = results.some(([c, s]) => c.durable && s.status === "ok");
  const allUp = results.every(([, s]) => s.status === "ok");
  return {
    status: allUp ? "ok" : durableUp ? "degraded" : "down",
    mode,
    tiers: Object.fromEntries(results.map(([c, s]) => [c.name, s])),
    errors: Object.fromEntries(results.flatMap(([c, , e]) => (e === undefined ? [] : [[c.name, e]]))),
  };
};

const round = (ms: number): number => Math.round(ms * 100) / 100;

/**
 * Probes the tiers at most once per `maxAgeMs` (concurrent callers share one probe), so a flood
 * of health checks — load balancers, uptime monitors — does not ping every tier each time.
 */
export class HealthMonitor {
  private last: { at: number; report: Promise<HealthReport> } | undefined;

  constructor(
    private readonly probe: () => Promise<HealthReport>,
    private readonly clock: { now(): number },
    private readonly maxAgeMs: number,
  ) {}

  report(): Promise<HealthReport> {
    const now = this.clock.now();
    if (this.last === undefined || now - this.last.at >= this.maxAgeMs) {
      const report = this.probe();
      this.last = { at: now, report };
      // A failed probe is not kept: the next caller probes again.
      report.catch(() => {
        if (this.last?.report === report) this.last = undefined;
      });
    }
    return this.last.report;
  }
}
