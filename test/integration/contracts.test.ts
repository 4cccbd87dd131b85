/**
 * The ports' contract suites against the real adapters: Redis (this project runs once against a
 * standalone server and once against a 3-master cluster) and PostgreSQL. The same suites run
 * against the in-memory fakes in test/unit/contracts.test.ts.
 */

import pg from "pg";
import { PgErasureRepository } from "../../lambdas/adapters/postgres/pg-erasure-repository.ts";
import { PgMessageRepository } from "../../lambdas/adapters/postgres/pg-message-repository.ts";
import { PgThreadRepository } from "../../lambdas/adapters/postgres/pg-thread-repository.ts";
import { isPgOutage } from "../../lambdas/adapters/postgres/pool.ts";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import { CONTRACT_OPTIONS, messageCacheContract } from "../contracts/message-cache.contract.ts";
import { repositoryContract } from "../contracts/repositories.contract.ts";
import { streamStoreContract } from "../contracts/stream-store.contract.ts";
import { ManualClock } from "../support/fakes.ts";
import { redisHarness } from "../support/redis-harness.ts";
import { TEST_DATABASE_URL, viaPooler } from "../support/test-env.ts";

messageCacheContract("Redis adapter", async () => {
  const clock = new ManualClock(Date.now());
  const redis = await redisHarness(clock, { ...CONTRACT_OPTIONS, ttlSeconds: 600 });
  return {
    cache: redis.cache,
    clock,
    options: CONTRACT_OPTIONS,
    registry: redis.registry,
    eraser: redis.eraser,
    flush: redis.flush,
    close: redis.close,
  };
});

streamStoreContract("Redis adapter", async () => {
  const clock = new ManualClock(Date.now());
  const redis = await redisHarness(clock, { ...CONTRACT_OPTIONS, ttlSeconds: 600 });
  return {
    streams: redis.streams,
    cache: redis.cache,
    registry: redis.registry,
    clock,
    flush: redis.flush,
    close: redis.close,
  };
});

repositoryContract("PostgreSQL adapters", async () => {
  const pool = new pg.Pool({ connectionString: viaPooler(TEST_DATABASE_URL), max: 4 });
  const guard = new TierGuard("postgres", { failureThreshold: 1000, halfOpenAfterMs: 1000 }, isPgOutage);
  return {
    messages: new PgMessageRepository(pool, guard),
    threads: new PgThreadRepository(pool, guard),
    erasures: new PgErasureRepository(pool, guard),
    close: () => pool.end(),
  };
});
