/**
 * The erasure's second pass over Redis walks every primary's whole keyspace. Each SCAN page is its
 * own bounded call, so the pass finishes however many other keys the server holds — when the whole
 * pass ran inside one call's timeout, it never finished on a Redis with half a million keys (found
 * by the benchmark: every erasure stalled at its Redis step). Here a small SCAN count stands in for
 * the big keyspace: thousands of pages, without loading the server other tests share.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createRedisClient, isRedisOutage, type RedisClient } from "../../lambdas/adapters/redis/client.ts";
import { RedisKeys } from "../../lambdas/adapters/redis/keys.ts";
import { primaries, RedisThreadEraser } from "../../lambdas/adapters/redis/redis-thread-eraser.ts";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import { TEST_REDIS_CLUSTER, TEST_REDIS_URL } from "../support/test-env.ts";

const OTHER_KEYS = 10_000;
/** Keys a SCAN page looks at: small, so that the pass takes many pages (2,000 and more) as on a big keyspace. */
const SCAN_COUNT = 5;
const prefix = `sweep-${randomBytes(4).toString("hex")}:`;
let client: RedisClient;

const deleteMatching = async (pattern: string): Promise<void> => {
  for (const node of await primaries(client)) {
    let cursor = "0";
    do {
      const [next, found] = await node.scan(cursor, "MATCH", pattern, "COUNT", 5000);
      cursor = next;
      // Through the client: in a cluster one node's keys span slots, which one pipeline cannot.
      await Promise.all(found.map((key) => client.unlink(key)));
    } while (cursor !== "0");
  }
};

beforeAll(async () => {
  client = createRedisClient({
    url: TEST_REDIS_URL,
    cluster: TEST_REDIS_CLUSTER === "true",
    connectTimeoutMs: 2000,
    commandTimeoutMs: 5000,
  });
  // Other tenants' keys: what a production Redis holds besides the erased thread.
  // One hash tag: in a cluster they share a slot, so the client can pipeline their writes.
  const other = `${prefix}{other}:`;
  for (let i = 0; i < OTHER_KEYS; i += 5000)
    await Promise.all(
      Array.from({ length: Math.min(5000, OTHER_KEYS - i) }, (_, j) =>
        client.set(`${other}${i + j}`, "x", "EX", 600),
      ),
    );
});

afterAll(async () => {
  await deleteMatching(`${prefix}*`);
  await client.quit();
});

it("sweeps a thread's keys out of a keyspace of thousands of SCAN pages, each page within a 100 ms call timeout", async () => {
  const keys = new RedisKeys(prefix);
  const thread = "0190f0e0-0000-7000-8000-00000000abcd";
  const tag = keys.threadTag(thread);
  await client.set(`${tag}:meta`, "{}", "EX", 600);
  await client.zadd(`${tag}:ix`, 1, '{"id":"0190f0e0-0000-7000-8000-00000000beef","seq":1}');
  await client.set(keys.message("0190f0e0-0000-7000-8000-00000000beef"), "{}", "EX", 600);
  const guard = new TierGuard(
    "redis",
    { failureThreshold: 1000, halfOpenAfterMs: 1000, timeoutMs: 100 },
    isRedisOutage,
  );
  const eraser = new RedisThreadEraser(client, keys, guard, SCAN_COUNT);

  const removed = await eraser.sweep([thread]);

  expect(removed).toBe(3);
  // One key per call: in a cluster the lookup key lives in another slot than the thread's keys.
  for (const key of [`${tag}:meta`, `${tag}:ix`, keys.message("0190f0e0-0000-7000-8000-00000000beef")])
    expect(await client.exists(key)).toBe(0);
});
