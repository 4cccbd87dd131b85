/**
 * Key layout. Every key a script touches together carries the same hash tag, so the scripts run on
 * one Redis Cluster slot (as ElastiCache Serverless requires): `{t:<thread>}` for a thread's keys,
 * `{m:<message>}` for lookups by message id, `{c:<connection>}` for a connection's keys, `{rl:<user>}`
 * for a user's rate-limit bucket.
 */
export class RedisKeys {
  constructor(private readonly prefix: string) {}

  /**
   * The thread's hot state, a hash: `meta` (the thread record), `seq` (last allocated), `pos` and
   * `ep` (stream position and epoch), `floor` (the index holds every visible message from here),
   * `idu` (until when unknown idempotency keys are checked against PostgreSQL).
   */
  threadState = (threadId: string): string => `${this.prefix}{t:${threadId}}:st`;
  /** The newest messages, score = seq. */
  threadMessages = (threadId: string): string => `${this.prefix}{t:${threadId}}:ix`;
  /** Reserved seqs not resolved yet, score = seq, member = `<seq>:<deadline ms>`. */
  threadPending = (threadId: string): string => `${this.prefix}{t:${threadId}}:pend`;
  /** Visible messages PostgreSQL may not have yet, score = seq, member = `<seq>:<deadline ms>`. */
  threadUnpersisted = (threadId: string): string => `${this.prefix}{t:${threadId}}:unp`;
  /** The newest stream positions, score = pos, member = seq: what a resuming subscriber replays. */
  threadLog = (threadId: string): string => `${this.prefix}{t:${threadId}}:log`;
  threadSubscribers = (threadId: string): string => `${this.prefix}{t:${threadId}}:subs`;
  /** A key's record: `{s:"p",…}` while a try holds it, `{s:"c",m:<message>}` once visible. */
  idempotency = (threadId: string, key: string): string => `${this.prefix}{t:${threadId}}:ik:${key}`;
  /**
   * A streamed reply's live state, a hash: `st` (state), `i` (last delta index), `base` (first
   * index held), `n`/`b` (deltas, bytes), `o`/`fa`/`la` (opened, first and last delta, ms), `msg`
   * (the opened message), `fin` (the final message, once it ended), `own` (the thread's owner).
   */
  stream = (threadId: string, messageId: string): string => `${this.prefix}{t:${threadId}}:sm:${messageId}`;
  /** A streamed reply's deltas, joined. */
  streamContent = (threadId: string, messageId: string): string =>
    `${this.prefix}{t:${threadId}}:sc:${messageId}`;
  /** The thread's newest ended replies, score = the thread's stream position when each ended. */
  threadEndedStreams = (threadId: string): string => `${this.prefix}{t:${threadId}}:ended`;
  /** The thread's replies still streaming (message ids). */
  threadStreams = (threadId: string): string => `${this.prefix}{t:${threadId}}:streams`;
  /**
   * Set when the thread is deleted (a set of its message ids): the hot tier does not install it
   * again, and the sweep removes those messages' lookups (see HotTierEraser).
   */
  threadGone = (threadId: string): string => `${this.prefix}{t:${threadId}}:gone`;
  /** Every key under a thread's hash tag starts with this. */
  threadTag = (threadId: string): string => `${this.prefix}{t:${threadId}}`;
  /** The thread id in a key under a thread's hash tag (null: not such a key). */
  threadOf = (key: string): string | null => {
    if (!key.startsWith(`${this.prefix}{t:`)) return null;
    const end = key.indexOf("}", this.prefix.length + 3);
    return end < 0 ? null : key.slice(this.prefix.length + 3, end);
  };
  message = (messageId: string): string => `${this.prefix}{m:${messageId}}`;
  connection = (connectionId: string): string => `${this.prefix}{c:${connectionId}}`;
  connectionThreads = (connectionId: string): string => `${this.prefix}{c:${connectionId}}:threads`;
  rateLimit = (principalId: string): string => `${this.prefix}{rl:${principalId}}`;
  /** A user's open WebSocket connections, score = when the entry expires (ms). */
  userConnections = (userId: string): string => `${this.prefix}{u:${userId}}:conns`;
}
