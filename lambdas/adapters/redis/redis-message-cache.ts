/**
 * The hot tier. Per thread, under one hash tag: its state (record, seq counter, stream position,
 * index floor, restore hold), the newest messages, reservations not resolved yet, messages
 * PostgreSQL may not have yet, idempotency records and the subscriber set. Per message: a lookup
 * key by id. Every multi-key step is one Lua script (scripts.ts) on the thread's slot.
 *
 * A history row is served from here only at or above the floor, where the index provably holds
 * every visible message. Every message made visible gets the thread's next stream position and
 * goes into a short log, from which a resuming subscriber replays what it missed. Redis may lose
 * everything at any time: a state created anew says so with a new epoch.
 */
import { fingerprintOf, idempotencyKey, newEpoch } from "../../core/ids.ts";
import type { HistoryQuery, Message, StreamPosition, Thread } from "../../core/model.ts";
import { serializeMessage, serializeThread } from "../../core/model.ts";
import type {
  CachedHistory,
  Clock,
  Following,
  LateVisibility,
  MessageCache,
  OwnedMessage,
  ReleaseOutcome,
  Reservation,
  ReserveInput,
  StoreResult,
  ThreadInstall,
} from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { RedisClient } from "./client.ts";
import type { RedisKeys } from "./keys.ts";
import {
  FOLLOW,
  HISTORY,
  INSTALL,
  REFRESH,
  RELEASE,
  RESERVE,
  type Scripts,
  STORE,
  UPDATE_THREAD,
  WARM,
} from "./scripts.ts";

export interface RedisCacheOptions {
  /** Newest messages kept per thread (more while PostgreSQL has not confirmed them). */
  readonly historySize: number;
  readonly ttlSeconds: number;
  readonly idempotencyTtlSeconds: number;
  /** Every accepted message is in PostgreSQL within this long (docs/architecture.md). */
  readonly persistBoundMs: number;
  /** How long a try holds its key before another try may take the reservation over. */
  readonly leaseMs: number;
  /** Stream positions kept for replay per thread (a subscriber further behind catches up by seq). */
  readonly logSize: number;
}

const seqArg = (seq: number): string => seq.toFixed(0);

type Row = string[];

export class RedisMessageCache implements MessageCache {
  constructor(
    private readonly client: RedisClient,
    private readonly scripts: Scripts,
    private readonly keys: RedisKeys,
    private readonly guard: TierGuard,
    private readonly clock: Clock,
    private readonly options: RedisCacheOptions,
  ) {}

  install({ thread, lastSeq, genesis }: ThreadInstall): Promise<void> {
    const o = this.options;
    return this.guard.run(async () => {
      await this.scripts.run(
        INSTALL,
        [this.keys.threadState(thread.id), this.keys.threadGone(thread.id)],
        [
          serializeThread(thread),
          seqArg(lastSeq),
          genesis ? "1" : "0",
          newEpoch(),
          this.clock.now(),
          o.persistBoundMs,
          o.ttlSeconds,
          o.idempotencyTtlSeconds * 1000,
          thread.owner_id,
        ],
      );
    });
  }

  updateThread(thread: Thread): Promise<readonly string[]> {
    return this.guard.run(async () => {
      const subscribers = await this.scripts.run(
        UPDATE_THREAD,
        [this.keys.threadState(thread.id), this.keys.threadSubscribers(thread.id)],
        [],
      );
      return (subscribers as string[] | undefined) ?? [];
    });
  }

  getThread(id: string): Promise<Thread | null> {
    return this.guard.run(async () => {
      const raw = await this.client.hget(this.keys.threadState(id), "meta");
      return raw === null ? null : (JSON.parse(raw) as Thread);
    });
  }

  reserve(input: ReserveInput): Promise<Reservation> {
    const k = this.keys;
    const o = this.options;
    const now = this.clock.now();
    return this.guard.run(async () => {
      const reply = (await this.scripts.run(
        RESERVE,
        [
          k.threadState(input.threadId),
          k.threadPending(input.threadId),
          k.idempotency(input.threadId, input.idempotencyKey),
          k.threadMessages(input.threadId),
        ],
        [
          input.ownerId ?? "",
          input.token,
          input.fingerprint,
          input.nowMs,
          now,
          now + o.leaseMs,
          now + o.persistBoundMs,
          o.ttlSeconds,
          o.idempotencyTtlSeconds,
          input.clientSupplied ? "1" : "0",
        ],
      )) as [number, ...string[]];
      const [kind, meta, a, b, takeover, verify] = reply;
      switch (kind) {
        case 0:
          return { kind: "unknown_thread" };
        case 4:
          return { kind: "not_found" };
        case 5:
          return { kind: "mismatch" };
        case 3:
          return { kind: "in_progress" };
        case 2:
          return {
            kind: "replay",
            thread: JSON.parse(meta as string),
            message: a === undefined || a === "" ? null : (JSON.parse(a) as Message),
          };
        default:
          return {
            kind: "reserved",
            thread: JSON.parse(meta as string) as Thread,
            seq: Number(a),
            createdAtMs: Number(b),
            takeover: takeover === "1",
            verify: verify === "1",
          };
      }
    });
  }

  store(
    message: Message,
    ctx: {
      ownerId: string;
      idempotencyKey: string;
      fingerprint: string;
      token: string;
      queued: boolean;
    },
  ): Promise<StoreResult> {
    const k = this.keys;
    const o = this.options;
    const json = serializeMessage(message);
    const threadId = message.thread_id;
    const now = this.clock.now();
    return this.guard.run(async () => {
      const [reply] = await Promise.all([
        this.scripts.run(
          STORE,
          [
            k.threadState(threadId),
            k.threadMessages(threadId),
            k.threadPending(threadId),
            k.threadUnpersisted(threadId),
            k.threadSubscribers(threadId),
            k.idempotency(threadId, ctx.idempotencyKey),
            k.threadLog(threadId),
          ],
          [
            seqArg(message.seq),
            json,
            ctx.queued ? "1" : "0",
            o.historySize,
            o.ttlSeconds,
            o.idempotencyTtlSeconds,
            now,
            now + o.persistBoundMs,
            ctx.fingerprint,
            o.logSize,
            ctx.token,
          ],
        ) as Promise<[number, ...unknown[]]>,
        this.client.set(
          k.message(message.id),
          JSON.stringify({ o: ctx.ownerId, m: message }),
          "EX",
          o.ttlSeconds,
        ),
      ]);
      const [kind, a, b, c] = reply;
      if (kind === 0) {
        // The lookup went out beside the script; when the thread was deleted meanwhile (marked
        // gone), nothing else would ever name it: it goes now.
        if ((await this.client.exists(k.threadGone(threadId))) === 1)
          await this.client.unlink(k.message(message.id));
        return { kind: "lost" };
      }
      if (kind === 2) {
        return {
          kind: "replay",
          message: a === "" || a === undefined ? null : (JSON.parse(a as string) as Message),
        };
      }
      return {
        kind: "visible",
        position: { pos: Number(a), epoch: String(b) },
        subscribers: (c as string[] | undefined) ?? [],
      };
    });
  }

  release(input: {
    threadId: string;
    seq: number;
    idempotencyKey: string;
    token: string;
    fingerprint: string;
    createdAtMs: number;
    outcome: ReleaseOutcome;
  }): Promise<void> {
    const { outcome } = input;
    const now = this.clock.now();
    const code = outcome.kind === "abandoned" ? "a" : outcome.kind === "unknown" ? "u" : "r";
    return this.guard.run(async () => {
      await this.scripts.run(
        RELEASE,
        [
          this.keys.threadPending(input.threadId),
          this.keys.idempotency(input.threadId, input.idempotencyKey),
        ],
        [
          seqArg(input.seq),
          input.token,
          code,
          now + this.options.persistBoundMs,
          outcome.kind === "replayed" ? seqArg(outcome.message.seq) : "",
          this.options.idempotencyTtlSeconds,
          input.fingerprint,
          input.createdAtMs,
          now + this.options.leaseMs,
        ],
      );
    });
  }

  history(threadId: string, query: HistoryQuery): Promise<CachedHistory | null> {
    const backward = query.direction === "backward";
    const cursor = backward ? (query.before === undefined ? "" : seqArg(query.before)) : seqArg(query.after);
    return this.guard.run(async () => {
      const reply = (await this.scripts.run(
        HISTORY,
        [this.keys.threadState(threadId), this.keys.threadMessages(threadId)],
        [backward ? "b" : "f", cursor, query.limit + 1],
      )) as Row;
      if (reply.length === 0) return null;
      const [floor, epoch, pos, ...rows] = reply;
      return {
        floor: Number(floor),
        position: { epoch: String(epoch), pos: Number(pos) },
        rows: rows.map((json) => JSON.parse(json) as Message),
      };
    });
  }

  follow(
    threadId: string,
    connectionId: string,
    since: StreamPosition | null,
    limit: number,
  ): Promise<Following | null> {
    const k = this.keys;
    return this.guard.run(async () => {
      const reply = (await this.scripts.run(
        FOLLOW,
        [
          k.threadState(threadId),
          k.threadSubscribers(threadId),
          k.threadLog(threadId),
          k.threadMessages(threadId),
        ],
        [connectionId, this.options.ttlSeconds, since?.epoch ?? "", since?.pos ?? "", limit],
      )) as [number, string, string, string, ...string[]];
      const [found, epoch, pos, mode, ...entries] = reply;
      if (found === 0) return null;
      const position = { epoch: String(epoch), pos: Number(pos) };
      if (mode !== "r") return { position, replay: null };
      const replay = [];
      for (let i = 0; i + 1 < entries.length; i += 2) {
        replay.push({ message: JSON.parse(entries[i] as string) as Message, pos: Number(entries[i + 1]) });
      }
      return { position, replay };
    });
  }

  warm(threadId: string, messages: readonly Message[], complete: boolean): Promise<void> {
    if (messages.length === 0 && !complete) return Promise.resolve();
    const lowest = messages.length === 0 ? 0 : Math.min(...messages.map((m) => m.seq));
    return this.guard.run(async () => {
      await this.scripts.run(
        WARM,
        [
          this.keys.threadState(threadId),
          this.keys.threadMessages(threadId),
          this.keys.threadPending(threadId),
          this.keys.threadUnpersisted(threadId),
        ],
        [
          complete ? "0" : seqArg(lowest),
          this.options.historySize,
          this.options.ttlSeconds,
          this.clock.now(),
          ...messages.flatMap((m) => [seqArg(m.seq), serializeMessage(m)]),
        ],
      );
    });
  }

  refresh(messages: readonly Message[]): Promise<LateVisibility[]> {
    const byThread = new Map<string, Message[]>();
    for (const message of messages) {
      const list = byThread.get(message.thread_id) ?? [];
      list.push(message);
      byThread.set(message.thread_id, list);
    }
    const k = this.keys;
    const o = this.options;
    const now = this.clock.now();
    return this.guard.run(async () => {
      const replies = await Promise.all(
        [...byThread].map(async ([threadId, list]) => {
          const reply = (await this.scripts.run(
            REFRESH,
            [
              k.threadState(threadId),
              k.threadMessages(threadId),
              k.threadPending(threadId),
              k.threadUnpersisted(threadId),
              k.threadSubscribers(threadId),
              k.threadLog(threadId),
              ...list.map((m) =>
                k.idempotency(threadId, idempotencyKey(m.user_id, m.client_message_id ?? `id:${m.id}`)),
              ),
            ],
            [
              o.historySize,
              o.ttlSeconds,
              o.idempotencyTtlSeconds,
              now,
              o.logSize,
              ...list.flatMap((m) => [seqArg(m.seq), serializeMessage(m), fingerprintOf(m)]),
            ],
          )) as unknown[];
          return lateFrom(threadId, list, reply);
        }),
      );
      return replies.filter((r): r is LateVisibility => r !== null);
    });
  }

  getMessage(id: string): Promise<OwnedMessage | null> {
    return this.guard.run(async () => {
      const raw = await this.client.get(this.keys.message(id));
      if (raw === null) return null;
      const { o, m } = JSON.parse(raw) as { o: string; m: Message };
      return { ownerId: o, message: m };
    });
  }

  ping(): Promise<void> {
    return this.guard.run(async () => {
      await this.client.ping();
    });
  }
}

/** REFRESH's reply: {1, epoch, subscribers, seq, pos, ...} for what it made visible. */
const lateFrom = (threadId: string, list: readonly Message[], reply: unknown[]): LateVisibility | null => {
  if (reply.length < 3) return null;
  const [, epoch, subscribers, ...pairs] = reply as [number, string, string[], ...string[]];
  const bySeq = new Map(list.map((m) => [seqArg(m.seq), m]));
  const messages: { message: Message; pos: number }[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const message = bySeq.get(pairs[i] as string);
    if (message !== undefined) messages.push({ message, pos: Number(pairs[i + 1]) });
  }
  return messages.length === 0 ? null : { threadId, epoch, subscribers, messages };
};
