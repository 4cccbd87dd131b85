/**
 * Per-user request budgets. Service principals (the AI agent, posting into many users' threads)
 * are not limited. When the limiter itself is unavailable the request is admitted: a cache outage
 * must not stop users from sending.
 */
import { describeError, RateLimitedError } from "./errors.ts";
import { isService, type Principal } from "./model.ts";
import type { Diagnostics, RateLimiter } from "./ports.ts";

/** Resolves when the principal may proceed; rejects with RateLimitedError when it may not. */
export const admit = async (
  limiter: RateLimiter,
  principal: Principal,
  diagnostics: Diagnostics,
): Promise<void> => {
  if (isService(principal)) return;
  let verdict: { allowed: boolean; retryAfterSeconds: number };
  try {
    verdict = await limiter.take(principal.userId);
  } catch (error) {
    diagnostics.warn("rate limiter unavailable; admitting", {
      userId: principal.userId,
      error: describeError(error),
    });
    return;
  }
  if (!verdict.allowed) throw new RateLimitedError(Math.max(1, Math.ceil(verdict.retryAfterSeconds)));
};

/** A limiter that admits everything (rate limiting switched off). */
export const unlimited: RateLimiter = { take: async () => ({ allowed: true, retryAfterSeconds: 0 }) };
