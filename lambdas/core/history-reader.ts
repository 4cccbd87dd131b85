/**
 * Where history is read back: pages in `seq` order, each with the stream position it was read at
 * and the `settled` cursor — what a client keeps to resume (docs/architecture.md, "Gap-free
 * resume").
 *
 * The hot tier vouches for every visible message at or above its floor; PostgreSQL holds every
 * message below it (the hot tier keeps what PostgreSQL has not confirmed, and never raises the
 * floor over a seq still pending). So a page is the hot tier's rows, completed from PostgreSQL
 * below the floor. Without the hot tier the page comes from PostgreSQL alone, without a position.
 */
import { bestEffort } from "./best-effort.ts";
import { messageNotFound, ServiceUnavailableError, unavailableAs } from "./errors.ts";
import { lookupMessage } from "./message-lookup.ts";
import {
  canAccessThread,
  type HistoryPage,
  type HistoryQuery,
  type Message,
  type Principal,
} from "./model.ts";
import type { CachedHistory, Diagnostics, MessageCache, MessageRepository, StoredPage } from "./ports.ts";
import type { Settled } from "./sequence.ts";
import type { ThreadAccess } from "./thread-access.ts";

export interface ReadResult<T> {
  readonly value: T;
  /** "database": PostgreSQL was read (alone or below the hot tier's floor). */
  readonly source: "cache" | "database";
}

/** Shows streamed replies as they stand now (StreamService). */
export interface LiveView {
  live(threadId: string, messages: readonly Message[]): Promise<Message[]>;
}

export interface HistoryReaderDeps {
  /** Absent: replies still streaming are shown as opened. */
  readonly live?: LiveView;
  readonly cache: MessageCache;
  readonly messages: MessageRepository;
  readonly access: ThreadAccess;
  readonly settled: Settled;
  readonly diagnostics: Diagnostics;
}

export class HistoryReader {
  constructor(private readonly deps: HistoryReaderDeps) {}

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
    const result = await this.readStored(threadId, query);
    if (this.deps.live === undefined) return result;
    const messages = await this.deps.live.live(threadId, result.value.messages);
    return { ...result, value: { ...result.value, messages } };
  }

  private async readStored(threadId: string, query: HistoryQuery): Promise<ReadResult<HistoryPage>> {
    // Taken before the read: whatever it counts as settled was visible when the read began.
    const settled = this.deps.settled();
    const cached = await bestEffort(
      this.deps.diagnostics,
      "cache unavailable for history",
      { threadId },
      () => this.deps.cache.history(threadId, query),
      null,
    );
    if (cached === null) return this.fromDatabase(threadId, query, settled);
    return query.direction === "backward"
      ? this.backward(threadId, query, cached, settled)
      : this.forward(threadId, query, cached, settled);
  }

  private async backward(
    threadId: string,
    query: Extract<HistoryQuery, { direction: "backward" }>,
    cached: CachedHistory,
    settled: number,
  ): Promise<ReadResult<HistoryPage>> {
    const { limit } = query;
    const rows = [...cached.rows].reverse();
    const { floor } = cached;
    const page = this.pageAt(cached, settled);
    if (rows.length > limit) {
      const messages = rows.slice(1);
      return cacheResult(page(messages, messages[0]?.seq ?? null));
    }
    if (floor === 0) return cacheResult(page(rows, null));
    if (rows.length === limit) return cacheResult(page(rows, rows[0]?.seq ?? null));
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
    return { value: page([...below.messages, ...rows], below.next_cursor), source: "database" };
  }

  private async forward(
    threadId: string,
    query: Extract<HistoryQuery, { direction: "forward" }>,
    cached: CachedHistory,
    settled: number,
  ): Promise<ReadResult<HistoryPage>> {
    const { limit, after } = query;
    const { floor, rows } = cached;
    const at = this.pageAt(cached, settled);
    const page = (messages: readonly Message[]): HistoryPage => {
      const kept = messages.slice(0, limit);
      return at(kept, messages.length > limit ? (kept.at(-1)?.seq ?? null) : null);
    };
    if (after >= floor - 1) return cacheResult(page(rows));
    // From the cursor up to the floor PostgreSQL answers; from the floor on, the hot tier's rows.
    const below = await this.stored(threadId, query, floor);
    if (below.next_cursor !== null) {
      return { value: at(below.messages, below.next_cursor), source: "database" };
    }
    return { value: page([...below.messages, ...rows]), source: "database" };
  }

  private async fromDatabase(
    threadId: string,
    query: HistoryQuery,
    settled: number,
  ): Promise<ReadResult<HistoryPage>> {
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
    const value = { ...stored, epoch: null, pos: null, settled };
    return { value, source: "database" };
  }

  /** Builds pages stamped with the position the hot tier read them at. */
  private pageAt(
    cached: CachedHistory,
    settled: number,
  ): (messages: Message[], next: number | null) => HistoryPage {
    const { epoch, pos } = cached.position;
    return (messages, next_cursor) => ({ messages, next_cursor, epoch, pos, settled });
  }

  private stored(threadId: string, query: HistoryQuery, below: number | undefined): Promise<StoredPage> {
    return this.deps.messages.history(threadId, query, below).catch(unavailableAs("History unavailable"));
  }

  /**
   * One message: the hot tier first, then PostgreSQL. Not found in PostgreSQL while the hot tier
   * could not be asked is not "not found": the message may be accepted and on its way (503).
   */
  async message(principal: Principal, messageId: string): Promise<ReadResult<Message>> {
    const { found, source, cacheAnswered } = await lookupMessage(this.deps, messageId);
    if (found === null && !cacheAnswered) throw new ServiceUnavailableError("Message store unavailable");
    if (found === null || !canAccessThread(principal, { owner_id: found.ownerId })) throw messageNotFound();
    const [value = found.message] =
      this.deps.live === undefined
        ? [found.message]
        : await this.deps.live.live(found.message.thread_id, [found.message]);
    return { value, source };
  }
}

const cacheResult = (value: HistoryPage): ReadResult<HistoryPage> => ({ value, source: "cache" });
