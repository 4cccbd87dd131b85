/**
 * Deleted threads in the hot tier. The first pass (as the thread is deleted) marks the thread gone
 * (a set naming its messages) and removes the keys it knows the names of: the thread's state, index, logs and sets, its
 * messages' lookups, stream states and idempotency records (named from what PostgreSQL held). The
 * sweep, after the settle time, walks the keyspace of every primary for keys under the threads'
 * hash tags — what a writer in flight wrote after the first pass, or what a first pass that failed
 * left — and removes them with the lookups of the messages they name (the gone mark's among them:
 * a lookup set by a writer in flight after the first pass), and the gone marks.
 */
import type { Cluster } from "ioredis";
import type { ErasedThread, HotTierEraser } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { RedisClient } from "./client.ts";
import type { RedisKeys } from "./keys.ts";

/** Keys per UNLINK. */
const CHUNK = 500;

/**
 * Every primary: a cluster client lists only its startup node until it has loaded the slot map,
 * so a sweep waits for that first (a sweep of one shard would miss keys and say it was done).
 */
export const primaries = async (client: RedisClient): Promise<RedisClient[]> => {
  if (!("nodes" in client) || typeof (client as Cluster).nodes !== "function") return [client];
  const cluster = client as Cluster;
  if (cluster.status !== "ready") {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("redis cluster not ready for a sweep")), 5000);
      cluster.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  const nodes = cluster.nodes("master");
  if (nodes.length === 0) throw new Error("redis cluster has no primaries");
  return nodes;
};

export class RedisThreadEraser implements HotTierEraser {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly guard: TierGuard,
    /** Keys a SCAN call looks at. */
    private readonly scanCount = 1000,
  ) {}

  forget(
    threads: readonly ErasedThread[],
    tombstoneTtlSeconds: number,
  ): Promise<{ subscribers: ReadonlyMap<string, readonly string[]>; keys: number }> {
    const k = this.keys;
    return this.guard.run(async () => {
      const subscribers = new Map<string, readonly string[]>();
      let removed = 0;
      for (const t of threads) {
        const id = t.threadId;
        subscribers.set(id, await this.client.smembers(k.threadSubscribers(id)));
        // Messages made visible that PostgreSQL did not have yet are known only to the index.
        const messageIds = [...new Set([...t.messageIds, ...(await this.idsInIndex(k.threadMessages(id)))])];
        // The gone mark names the messages: a lookup a writer in flight sets after this pass is
        // removed by the sweep ("-": a mark without messages).
        const members = ["-", ...messageIds];
        for (let i = 0; i < members.length; i += CHUNK) {
          await this.client.sadd(k.threadGone(id), ...members.slice(i, i + CHUNK));
        }
        await this.client.expire(k.threadGone(id), tombstoneTtlSeconds);
        // One slot: the thread's own keys.
        removed += await this.unlink([
          k.threadState(id),
          k.threadMessages(id),
          k.threadPending(id),
          k.threadUnpersisted(id),
          k.threadLog(id),
          k.threadSubscribers(id),
          k.threadEndedStreams(id),
          k.threadStreams(id),
          ...messageIds.flatMap((m) => [k.stream(id, m), k.streamContent(id, m)]),
          ...t.idempotencyKeys.map((key) => k.idempotency(id, key)),
        ]);
        // The lookups by message id, each in its own slot.
        removed += await this.unlinkEach(messageIds.map((m) => k.message(m)));
      }
      return { subscribers, keys: removed };
    });
  }

  /**
   * One pass over every primary's keys. Each SCAN page, and the removal of what it found, is one
   * guarded call: the whole pass takes as long as the keyspace is large, a page does not (a pass
   * inside one call's timeout never finished on a Redis with half a million keys).
   */
  async sweep(threadIds: readonly string[]): Promise<number> {
    const wanted = new Set(threadIds);
    let removed = 0;
    for (const node of await this.guard.run(() => primaries(this.client))) {
      let cursor = "0";
      do {
        const [next, found] = await this.guard.run(() =>
          node.scan(cursor, "MATCH", `${this.keys.threadTag("*")}*`, "COUNT", this.scanCount),
        );
        cursor = next;
        const mine = found.filter((key) => {
          const thread = this.keys.threadOf(key);
          return thread !== null && wanted.has(thread);
        });
        if (mine.length === 0) continue;
        removed += await this.guard.run(
          async () =>
            (await this.unlinkEach(await this.lookupsNamedBy(mine))) + (await this.unlinkEach(mine)),
        );
      } while (cursor !== "0");
    }
    return removed;
  }

  /** The lookup keys of the messages these thread keys name (an index's entries, a stream's id). */
  private async lookupsNamedBy(keys: readonly string[]): Promise<string[]> {
    const ids = new Set<string>();
    for (const key of keys) {
      const stream = /:sm:([^:]+)$/.exec(key);
      if (stream?.[1] !== undefined) ids.add(stream[1]);
      if (key.endsWith(":ix")) for (const id of await this.idsInIndex(key)) ids.add(id);
      if (key.endsWith(":gone")) {
        for (const id of await this.client.smembers(key)) if (id !== "-") ids.add(id);
      }
    }
    return [...ids].map((id) => this.keys.message(id));
  }

  /** The ids of the messages in a thread's index (each entry is a message's JSON, its id first). */
  private async idsInIndex(key: string): Promise<string[]> {
    const entries = await this.client.zrange(key, "0", "-1");
    return entries.flatMap((raw) => /^\{"id":"([^"]+)"/.exec(raw)?.[1] ?? []);
  }

  /** Keys of one slot, in chunks. */
  private async unlink(keys: readonly string[]): Promise<number> {
    let removed = 0;
    for (let i = 0; i < keys.length; i += CHUNK)
      removed += await this.client.unlink(...keys.slice(i, i + CHUNK));
    return removed;
  }

  /** Keys of any slots, one command each (pipelined by the client). */
  private async unlinkEach(keys: readonly string[]): Promise<number> {
    const counts = await Promise.all(keys.map((key) => this.client.unlink(key)));
    return counts.reduce((a, b) => a + b, 0);
  }
}
