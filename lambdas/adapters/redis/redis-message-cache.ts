/**
 * The hot tier. Per thread: its record, a sorted set of the newest messages (score = seq) with a
 * floor below which it is not known to be complete, the seq counter, idempotency keys and the
 * subscriber set, all under one hash tag. Per message: a lookup key by id.
 *
 * A history page is answered from Redis only when the index provably holds every message of the
 * page; otherwise the caller reads PostgreSQL. Redis may lose everything at any time.
 */
import type { HistoryPage, HistoryQuery, Message, Thread } from "../../core/model.ts";
import { serializeMessage, serializeThread } from "../../core/model.ts";
import type { MessageCache, OwnedMessage, Reservation } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { RedisClient } from "./client.ts";
import type { RedisKeys } from "./keys.ts";
import { HISTORY, REFRESH, RESERVE, type Scripts, STORE, WARM } from "./scripts.ts";

export interface RedisCacheOptions {
  /** Newest messages kept per thread. */
  readonly historySize: number;
  readonly ttlSeconds: number;
  readonly idempotencyTtlSeconds: number;
}

const seqArg = (seq: number): string => seq.toFixed(0);

const pairs = (messages: readonly Message[]): string[] =>
  messages.flatMap((m) => [seqArg(m.seq), serializeMessage(m)]);

export class RedisMessageCache implements MessageCache {
  constructor(
    private readonly client: RedisClient,
    private readonly scripts: Scripts,
    private readonly keys: RedisKeys,
    private readonly guard: TierGuard,
    private readonly options: RedisCacheOptions,
  ) {}

  reserve(input: { threadId: string; idempotencyKey?: string; install?: Thread }): Promise<Reservation> {
    const { threadId, idempotencyKey, install } = input;
    const k = this.keys;
    return this.guard.run(async () => {
      const reply = (await this.scripts.run(
        RESERVE,
        [
          k.threadMeta(threadId),
          k.threadSeq(threadId),
          k.threadSubscribers(threadId),
          k.idempotency(threadId, idempotencyKey ?? "-"),
        ],
        [
          install ? serializeThread(install) : "",
          this.options.ttlSeconds,
          idempotencyKey !== undefined ? "1" : "0",
        ],
      )) as [number, string?, string?, string[]?];
      const [kind, meta, value, subscribers] = reply;
      if (kind === 0 || meta === undefined || value === undefined) return { kind: "unknown_thread" };
      const thread = JSON.parse(meta) as Thread;
      if (kind === 2) return { kind: "replay", thread, message: JSON.parse(value) as Message };
      return { kind: "reserved", thread, seq: Number(value), subscribers: subscribers ?? [] };
    });
  }

  store(message: Message, ctx: { ownerId: string; idempotencyKey?: string }): Promise<void> {
    const k = this.keys;
    const json = serializeMessage(message);
    const { historySize, ttlSeconds, idempotencyTtlSeconds } = this.options;
    return this.guard.run(async () => {
      await Promise.all([
        this.scripts.run(
          STORE,
          [
            k.threadMessages(message.thread_id),
            k.threadFloor(message.thread_id),
            k.idempotency(message.thread_id, ctx.idempotencyKey ?? "-"),
          ],
          [
            seqArg(message.seq),
            json,
            historySize,
            ttlSeconds,
            idempotencyTtlSeconds,
            ctx.idempotencyKey ? "1" : "0",
          ],
        ),
        this.client.set(
          k.message(message.id),
          JSON.stringify({ o: ctx.ownerId, m: message }),
          "EX",
          ttlSeconds,
        ),
      ]);
    });
  }

  history(threadId: string, query: HistoryQuery): Promise<HistoryPage | null> {
    const backward = query.direction === "backward";
    const bound = backward
      ? query.before === undefined
        ? "+inf"
        : `(${seqArg(query.before)}`
      : `(${seqArg(query.after)}`;
    return this.guard.run(async () => {
      const reply = (await this.scripts.run(
        HISTORY,
        [this.keys.threadMessages(threadId), this.keys.threadFloor(threadId)],
        [backward ? "b" : "f", bound, query.limit + 1],
      )) as string[];
      if (reply.length === 0) return null;
      const floor = Number(reply[0]);
      const rows: { seq: number; json: string }[] = [];
      for (let i = 1; i + 1 < reply.length; i += 2) {
        rows.push({ json: reply[i] as string, seq: Number(reply[i + 1]) });
      }
      return backward ? this.backwardPage(rows, floor, query.limit) : this.forwardPage(rows, floor, query);
    });
  }

  /** Rows newest first. Complete if limit+1 rows lie at or above the floor, or the whole thread is here. */
  private backwardPage(
    rows: { seq: number; json: string }[],
    floor: number,
    limit: number,
  ): HistoryPage | null {
    const known = rows.filter((r) => r.seq >= floor);
    if (known.length > limit) {
      const page = known.slice(0, limit).reverse();
      return { messages: page.map((r) => JSON.parse(r.json) as Message), next_cursor: page[0]?.seq ?? null };
    }
    if (floor !== 0) return null;
    return { messages: known.reverse().map((r) => JSON.parse(r.json) as Message), next_cursor: null };
  }

  /** Rows oldest first. Complete if nothing can hide between the cursor and the floor. */
  private forwardPage(
    rows: { seq: number; json: string }[],
    floor: number,
    query: { after: number; limit: number },
  ): HistoryPage | null {
    if (floor > query.after + 1) return null;
    const page = rows.slice(0, query.limit);
    return {
      messages: page.map((r) => JSON.parse(r.json) as Message),
      next_cursor: rows.length > query.limit ? (page.at(-1)?.seq ?? null) : null,
    };
  }

  getMessage(id: string): Promise<OwnedMessage | null> {
    return this.guard.run(async () => {
      const raw = await this.client.get(this.keys.message(id));
      if (raw === null) return null;
      const { o, m } = JSON.parse(raw) as { o: string; m: Message };
      return { ownerId: o, message: m };
    });
  }

  getThread(id: string): Promise<Thread | null> {
    return this.guard.run(async () => {
      const raw = await this.client.get(this.keys.threadMeta(id));
      return raw === null ? null : (JSON.parse(raw) as Thread);
    });
  }

  putThread(thread: Thread): Promise<void> {
    return this.guard.run(async () => {
      await this.client.set(
        this.keys.threadMeta(thread.id),
        serializeThread(thread),
        "EX",
        this.options.ttlSeconds,
      );
    });
  }

  warm(threadId: string, messages: readonly Message[], complete: boolean): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    const lowest = Math.min(...messages.map((m) => m.seq));
    return this.guard.run(async () => {
      await this.scripts.run(
        WARM,
        [this.keys.threadMessages(threadId), this.keys.threadFloor(threadId)],
        [
          complete ? "0" : seqArg(lowest),
          this.options.historySize,
          this.options.ttlSeconds,
          ...pairs(messages),
        ],
      );
    });
  }

  refresh(entries: readonly OwnedMessage[]): Promise<void> {
    const byThread = new Map<string, Message[]>();
    for (const { message } of entries) {
      const list = byThread.get(message.thread_id) ?? [];
      list.push(message);
      byThread.set(message.thread_id, list);
    }
    return this.guard.run(async () => {
      await Promise.all(
        [...byThread].map(([threadId, messages]) =>
          this.scripts.run(
            REFRESH,
            [this.keys.threadMessages(threadId), this.keys.threadFloor(threadId)],
            [this.options.historySize, this.options.ttlSeconds, ...pairs(messages)],
          ),
        ),
      );
    });
  }

  ping(): Promise<void> {
    return this.guard.run(async () => {
      await this.client.ping();
    });
  }
}
