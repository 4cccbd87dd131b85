/** Per-principal token buckets in Redis, shared by every Lambda instance. */
import type { RateLimiter } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { RedisKeys } from "./keys.ts";
import { type Scripts, TAKE_TOKEN } from "./scripts.ts";

export interface RateLimitOptions {
  /** Sustained requests per second per principal. */
  readonly perSecond: number;
  /** Requests a principal may make at once after being idle. */
  readonly burst: number;
}

export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly scripts: Scripts,
    private readonly keys: RedisKeys,
    private readonly guard: TierGuard,
    private readonly options: RateLimitOptions,
  ) {}

  take(principalId: string): Promise<{ allowed: boolean; retryAfterSeconds: number }> {
    return this.guard.run(async () => {
      const [allowed, wait] = (await this.scripts.run(
        TAKE_TOKEN,
        [this.keys.rateLimit(principalId)],
        [this.options.perSecond, this.options.burst],
      )) as [number, string];
      return { allowed: allowed === 1, retryAfterSeconds: Number(wait) };
    });
  }
}
