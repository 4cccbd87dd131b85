/**
 * The Redis client as the functions create it, against a Redis that goes away: a command that
 * never left the process is known not to have happened (the accept path may then go on without
 * Redis), while one that may have reached the server is not (the accept path answers 503 with
 * the key to retry with).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRedisClient,
  type RedisClient,
  redisCommandNotSent,
} from "../../lambdas/adapters/redis/client.ts";
import { PrivateRedis } from "../support/redis-server.ts";
import { waitFor } from "../support/wait.ts";

let redis: PrivateRedis;
let client: RedisClient;

beforeAll(async () => {
  redis = await PrivateRedis.start();
  client = createRedisClient({
    url: redis.url,
    cluster: false,
    connectTimeoutMs: 1000,
    commandTimeoutMs: 300,
  });
});

afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

const failure = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error("expected the command to fail");
    },
    (error: unknown) => error,
  );

describe("the functions' Redis client", () => {
  it("waits for the first connection, then refuses commands at once while Redis is away, as not sent", async () => {
    expect(await client.set("k", "v")).toBe("OK");

    await redis.stop();
    await waitFor(() => client.status !== "ready", { what: "the client sees the connection closed" });
    const error = await failure(client.get("k"));
    expect(redisCommandNotSent(error)).toBe(true);

    await redis.resume();
    await waitFor(() => client.status === "ready", { what: "the client reconnected" });
    expect(await client.set("k", "again")).toBe("OK");
  });

  it("treats a command that timed out on a live connection as possibly applied", async () => {
    redis.pause();
    try {
      const error = await failure(client.set("slow", "1"));
      expect((error as Error).message).toBe("Command timed out");
      expect(redisCommandNotSent(error)).toBe(false);
    } finally {
      redis.unpause();
    }
    // It was sent: Redis applies it once it runs again.
    await waitFor(async () => (await client.get("slow")) === "1", { what: "the timed-out SET applied" });
  });
});
