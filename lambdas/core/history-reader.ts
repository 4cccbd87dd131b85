/**
 * Where history is read back: pages in `seq` order, each with the watermark a client may keep as
 * its resume cursor (docs/architecture.md, "Gap-free resume").
 *
 * The hot tier vouches for every visible message at or above its floor; PostgreSQL holds every
 * message below it (the hot tier keeps what PostgreSQL has not confirmed, and never raises the
 * floor over a seq still pending). So a page is the hot tier's rows, completed from PostgreSQL
 * below the floor. Without the hot tier, the page comes from PostgreSQL alone and the watermark
 * is what time alone settles (sequence.ts: settledByTime).
 */
import { bestEffort } from "./best-effort.ts";
import { messageNotFound, unavailableAs } from "./errors.ts";
import {
  canAccessThread,
  type HistoryPage,
  type HistoryQuery,
  type Message,
  type Principal,
} from "./model.ts";
import type { CachedHistory, Clock, Diagnostics, MessageCache, MessageRepository, StoredPage } from "./ports.ts";
import { settledByTime } from "./sequence.ts";
import type { ThreadAccess } from "./thread-access.ts";

export interface ReadResult<T> {
  readonly value: T;
  /** "database": PostgreSQL was read (alone or below the hot tier's floor). */
  readonly source: "cache" | "database";
}

export interface HistoryReaderDeps {
  readonly cache: MessageCache;
  readonly messages: MessageRepository;
  readonly access: ThreadAccess;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

export class HistoryReader {
  constructor(
    private readonly deps: HistoryReaderDeps,
    /** Every accepted message is in PostgreSQL within this long. */
    private readonly persistBoundMs: number,
  ) {}

  async history(
    principal: Principal,
    threadId: string,
    query: HistoryQuery,
  ): Promise<ReadResult<HistoryPage>> {
    await this.deps.access.accessible(principal, threadId);
    return this.read(threadId, query);
  }

  /** History without an access check: callers have authorised the thread already. */
  async read(threadId: string, query: HistoryQuery): Promise<ReadResult<HistoryPage>> {
    const cached = await bestEffort(
      this.deps.diagnostics,
      "cache unavailable for history",
      { threadId },
      () => this.deps.cache.history(threadId, query),
      null,
    );
    if (cached === null) return this.fromDatabase(threadId, query);
    return query.direction === "backward"
      ? this.backward(threadId, query, cached)
      : this.forward(threadId, query, cached);
  }

  private async backward(
    threadId: string,
    query: Extract<HistoryQuery, { direction: "backward" }>,
    cached: CachedHistory,
  ): Promise<ReadResult<HistoryPage>> {
    const { limit } = query;
    const rows = [...cached.rows].reverse();
    const { watermark, floor } = cached;
    if (rows.length > limit) {
      const messages = rows.slice(1);
      return cacheResult({ messages, next_cursor: messages[0]?.seq ?? null, watermark });
    }
    if (floor === 0) return cacheResult({ messages: rows, next_cursor: null, watermark });
    if (rows.length === limit) {
      return cacheResult({ messages: rows, next_cursor: rows[0]?.seq ?? null, watermark });
    }
    // The rest of the page lies below the floor, where PostgreSQL holds every message.
    const below = await this.stored(
      threadId,
      { direction: "backward", before: Math.min(query.before ?? floor, floor), limit: limit - rows.length },
      undefined,
    );
    if (query.before === undefined || query.before >= floor) {
      // Read right below the floor: the hot tier can extend its complete range down to it.
      await bestEffort(
        this.deps.diagnostics,
        "could not warm cache",
        { threadId },
        () => this.deps.cache.warm(threadId, below.messages, below.next_cursor === null),
        undefined,
      );
    }
    return {
      value: { messages: [...below.messages, ...rows], next_cursor: below.next_cursor, watermark },
      source: "database",
    };
  }

  private async forward(
    threadId: string,
    query: Extract<HistoryQuery, { direction: "forward" }>,
    cached: CachedHistory,
  ): Promise<ReadResult<HistoryPage>> {
    const { limit, after } = query;
    const { watermark, floor, rows } = cached;
    const page = (messages: readonly Message[]): HistoryPage => {
      const kept = messages.slice(0, limit);
      return { messages: kept, next_cursor: messages.length > limit ? (kept.at(-1)?.seq ?? null) : null, watermark };
    };
    if (after >= floor - 1) return cacheResult(page(rows));
    // From the cursor up to the floor PostgreSQL answers; from the floor on, the hot tier's rows.
    const below = await this.stored(threadId, query, floor);
    if (below.next_cursor !== null) {
      return { value: { ...below, watermark }, source: "database" };
    }
    return { value: page([...below.messages, ...rows]), source: "database" };
  }

  private async fromDatabase(threadId: string, query: HistoryQuery): Promise<ReadResult<HistoryPage>> {
    const stored = await this.stored(threadId, query, undefined);
    if (query.direction === "backward" && query.before === undefined) {
      await bestEffort(
        this.deps.diagnostics,
        "could not warm cache",
        { threadId },
        () => this.deps.cache.warm(threadId, stored.messages, stored.next_cursor === null),
        undefined,
      );
    }
    const watermark = settledByTime(this.deps.clock.now(), this.persistBoundMs);
    return { value: { ...stored, watermark }, source: "database" };
  }

  private stored(threadId: string, query: HistoryQuery, below: number | undefined): Promise<StoredPage> {
    return this.deps.messages.history(threadId, query, below).catch(unavailableAs("History unavailable"));
  }

  /** One message: the hot tier first, then PostgreSQL. */
  async message(principal: Principal, messageId: string): Promise<ReadResult<Message>> {
    const cached = await bestEffort(
      this.deps.diagnostics,
      "cache unavailable for message lookup",
      { messageId },
      () => this.deps.cache.getMessage(messageId),
      null,
    );
    const found =
      cached ??
      (await this.deps.messages.findById(messageId).catch(unavailableAs("Message store unavailable")));
    if (found === null || !canAccessThread(principal, { owner_id: found.ownerId })) throw messageNotFound();
    return { value: found.message, source: cached !== null ? "cache" : "database" };
  }
}

const cacheResult = (value: HistoryPage): ReadResult<HistoryPage> => ({ value, source: "cache" });
