/**
 * Key layout. Every key a script touches together carries the same hash tag, so the scripts run on
 * one Redis Cluster slot (as ElastiCache Serverless requires): `{t:<thread>}` for a thread's keys,
 * `{m:<message>}` for lookups by message id, `{c:<connection>}` for a connection's keys, `{rl:<user>}`
 * for a user's rate-limit bucket.
 */
export class RedisKeys {
  constructor(private readonly prefix: string) {}

  threadMeta = (threadId: string): string => `${this.prefix}{t:${threadId}}:meta`;
  threadSeq = (threadId: string): string => `${this.prefix}{t:${threadId}}:seq`;
  threadMessages = (threadId: string): string => `${this.prefix}{t:${threadId}}:msgs`;
  /** Lowest seq from which the thread index is known to be complete (0 = whole thread). */
  threadFloor = (threadId: string): string => `${this.prefix}{t:${threadId}}:floor`;
  threadSubscribers = (threadId: string): string => `${this.prefix}{t:${threadId}}:subs`;
  idempotency = (threadId: string, key: string): string => `${this.prefix}{t:${threadId}}:idem:${key}`;
  message = (messageId: string): string => `${this.prefix}{m:${messageId}}`;
  connection = (connectionId: string): string => `${this.prefix}{c:${connectionId}}`;
  connectionThreads = (connectionId: string): string => `${this.prefix}{c:${connectionId}}:threads`;
  rateLimit = (principalId: string): string => `${this.prefix}{rl:${principalId}}`;
}
