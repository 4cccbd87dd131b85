/**
 * The ports' contract suites against the real adapters: Redis (this project runs once against a
 * standalone server and once against a 3-master cluster) and PostgreSQL. The same suites run
 * against the in-memory fakes in test/unit/contracts.test.ts.
 */
import { CONTRACT_OPTIONS, messageCacheContract } from "../contracts/message-cache.contract.ts";
import { ManualClock } from "../support/fakes.ts";
import { redisHarness } from "../support/redis-harness.ts";

messageCacheContract("Redis adapter", async () => {
  const clock = new ManualClock(Date.now());
  const redis = await redisHarness(clock, { ...CONTRACT_OPTIONS, ttlSeconds: 600 });
  return {
    cache: redis.cache,
    clock,
    options: CONTRACT_OPTIONS,
    unsubscribe: (connectionId, threadId) => redis.registry.unsubscribe(connectionId, threadId),
    flush: redis.flush,
    close: redis.close,
  };
});
