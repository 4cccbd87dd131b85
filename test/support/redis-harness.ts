/** The Redis adapters over a private key prefix of the test Redis (standalone or cluster). */
import { randomBytes } from "node:crypto";
import { createRedisClient, isRedisOutage, type RedisClient } from "../../lambdas/adapters/redis/client.ts";
import { RedisKeys } from "../../lambdas/adapters/redis/keys.ts";
import { RedisConnectionRegistry } from "../../lambdas/adapters/redis/redis-connection-registry.ts";
import {
  type RedisCacheOptions,
  RedisMessageCache,
} from "../../lambdas/adapters/redis/redis-message-cache.ts";
import { RedisStreamStore } from "../../lambdas/adapters/redis/redis-stream-store.ts";
import { primaries, RedisThreadEraser } from "../../lambdas/adapters/redis/redis-thread-eraser.ts";
import { Scripts } from "../../lambdas/adapters/redis/scripts.ts";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import type { Clock } from "../../lambdas/core/ports.ts";
import { TEST_REDIS_CLUSTER, TEST_REDIS_URL } from "./test-env.ts";

export interface RedisHarness {
  readonly client: RedisClient;
  readonly cache: RedisMessageCache;
  readonly registry: RedisConnectionRegistry;
  readonly streams: RedisStreamStore;
  readonly eraser: RedisThreadEraser;
  /** Deletes every key under this harness's prefix, on every node. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export const redisHarness = async (clock: Clock, options: RedisCacheOptions): Promise<RedisHarness> => {
  const prefix = `contract-${randomBytes(4).toString("hex")}:`;
  const client = createRedisClient({
    url: TEST_REDIS_URL,
    cluster: TEST_REDIS_CLUSTER === "true",
    connectTimeoutMs: 2000,
    commandTimeoutMs: 2000,
  });
  const keys = new RedisKeys(prefix);
  const guard = new TierGuard("redis", { failureThreshold: 1000, halfOpenAfterMs: 1000 }, isRedisOutage);
  const cache = new RedisMessageCache(client, new Scripts(client), keys, guard, clock, options);
  const registry = new RedisConnectionRegistry(client, keys, guard, 3600);
  const streams = new RedisStreamStore(client, new Scripts(client), keys, guard, clock, options.ttlSeconds);
  const eraser = new RedisThreadEraser(client, keys, guard);
  const flush = async (): Promise<void> => {
    for (const node of await primaries(client)) {
      let cursor = "0";
      do {
        const [next, found] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
        cursor = next;
        // One key per call: in a cluster the keys of one node may still span slots.
        for (const key of found) await node.del(key);
      } while (cursor !== "0");
    }
  };
  return {
    client,
    cache,
    registry,
    streams,
    eraser,
    flush,
    close: async () => {
      await flush();
      client.disconnect();
    },
  };
};
