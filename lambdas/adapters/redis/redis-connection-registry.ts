/**
 * WebSocket connection registry. A connection's record and its thread list share the `{c:<id>}`
 * hash tag. A thread's subscriber set lives with the thread (`{t:<id>}`): it is joined by
 * `MessageCache.follow` and read by `MessageCache.store`, each atomically with the thread's stream
 * position; this registry only leaves it. Entries expire: API Gateway closes a connection after 2 h.
 */
import type { Principal } from "../../core/model.ts";
import type { Connection, ConnectionRegistry } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { RedisClient } from "./client.ts";
import type { RedisKeys } from "./keys.ts";

export class RedisConnectionRegistry implements ConnectionRegistry {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly guard: TierGuard,
    private readonly ttlSeconds: number,
  ) {}

  register(connection: Connection): Promise<number> {
    const record = JSON.stringify({ p: connection.principal, at: connection.connectedAt });
    const mine = this.keys.userConnections(connection.principal.userId);
    const expires = connection.connectedAt + this.ttlSeconds * 1000;
    return this.guard.run(async () => {
      await this.client.set(this.keys.connection(connection.connectionId), record, "EX", this.ttlSeconds);
      // Entries of connections that ended without a $disconnect expire with their records.
      await this.client.zremrangebyscore(mine, "-inf", connection.connectedAt);
      await this.client.zadd(mine, expires, connection.connectionId);
      await this.client.expire(mine, this.ttlSeconds);
      return this.client.zcard(mine);
    });
  }

  get(connectionId: string): Promise<Connection | null> {
    return this.guard.run(async () => {
      const raw = await this.client.get(this.keys.connection(connectionId));
      if (raw === null) return null;
      const { p, at } = JSON.parse(raw) as { p: Principal; at: number };
      return { connectionId, principal: p, connectedAt: at };
    });
  }

  subscribe(connectionId: string, threadId: string): Promise<number> {
    const threads = this.keys.connectionThreads(connectionId);
    return this.guard.run(async () => {
      await this.client.sadd(threads, threadId);
      await this.client.expire(threads, this.ttlSeconds);
      return this.client.scard(threads);
    });
  }

  unsubscribe(connectionId: string, threadId: string): Promise<void> {
    return this.guard.run(async () => {
      await Promise.all([
        this.client.srem(this.keys.threadSubscribers(threadId), connectionId),
        this.client.srem(this.keys.connectionThreads(connectionId), threadId),
      ]);
    });
  }

  remove(connectionId: string): Promise<void> {
    return this.guard.run(async () => {
      const [threads, raw] = await Promise.all([
        this.client.smembers(this.keys.connectionThreads(connectionId)),
        this.client.get(this.keys.connection(connectionId)),
      ]);
      const owner = raw === null ? undefined : (JSON.parse(raw) as { p: Principal }).p.userId;
      await Promise.all([
        ...threads.map((threadId) => this.client.srem(this.keys.threadSubscribers(threadId), connectionId)),
        ...(owner !== undefined ? [this.client.zrem(this.keys.userConnections(owner), connectionId)] : []),
        this.client.del(this.keys.connection(connectionId), this.keys.connectionThreads(connectionId)),
      ]);
    });
  }
}
