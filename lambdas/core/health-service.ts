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
