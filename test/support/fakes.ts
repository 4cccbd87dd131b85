/**
 * In-memory fakes of every port in `lambdas/core/ports.ts`, for unit tests of the core.
 *
 * Each fake that stands for a tier has an outage switch: `down = true` makes every call throw
 * `TierUnavailableError(tier, "down")`, and `fail(method, error?)` makes one method fail (with an
 * outage unless another error is given) until `heal()`. Every call is recorded in `calls`.
 */
import { ArchiveService } from "../../lambdas/core/archive-service.ts";
import { type Tier, TierUnavailableError, UnauthorizedError } from "../../lambdas/core/errors.ts";
import { Fanout, type FanoutOptions } from "../../lambdas/core/fanout.ts";
import { newId } from "../../lambdas/core/ids.ts";
import { type AcceptMode, MessageService } from "../../lambdas/core/message-service.ts";
import type { HistoryPage, HistoryQuery, Message, Principal, Thread } from "../../lambdas/core/model.ts";
import { toEpochSeconds } from "../../lambdas/core/model.ts";
import { OutboxRelay } from "../../lambdas/core/outbox-relay.ts";
import { PersistService } from "../../lambdas/core/persist-service.ts";
import type {
  AnalyticsPublisher,
  AnalyticsStore,
  Clock,
  CommitResult,
  Connection,
  ConnectionNotifier,
  ConnectionRegistry,
  DeliveryResult,
  Diagnostics,
  MessageCache,
  MessagePublisher,
  MessageRepository,
  OwnedMessage,
  PersistEnvelope,
  RateLimiter,
  Reservation,
  ThreadCursor,
  ThreadRepository,
  TokenVerifier,
} from "../../lambdas/core/ports.ts";
import {
  type QueueRecord,
  type RetryPolicy,
  serializeAnalyticsEnvelope,
} from "../../lambdas/core/records.ts";
import { nextSeq, POSTGRES_SEQ_LANE, REDIS_SEQ_LANE } from "../../lambdas/core/sequence.ts";
import { SubscriptionService } from "../../lambdas/core/subscription-service.ts";
import { ThreadService } from "../../lambdas/core/thread-service.ts";
import type { PostMessageInput } from "../../lambdas/core/validation.ts";

// ------------------------------------------------------------------ principals and inputs

export const user = (userId: string): Principal => ({ userId, roles: [] });
export const service = (userId: string): Principal => ({ userId, roles: ["service"] });
export const admin = (userId: string): Principal => ({ userId, roles: ["admin"] });

export const postInput = (content: string, extra: Partial<PostMessageInput> = {}): PostMessageInput => ({
  content,
  metadata: {},
  clientMessageId: undefined,
  role: undefined,
  ...extra,
});

// ------------------------------------------------------------------ outage switch

export interface Call<M extends string> {
  readonly method: M;
  readonly args: readonly unknown[];
}

/** Outage switch and call log shared by the tier fakes. */
export class TierFake<M extends string> {
  /** Every call fails like an outage of the tier while this is true. */
  down = false;
  readonly calls: Call<M>[] = [];
  private readonly failures = new Map<M, unknown>();

  constructor(readonly tier: Tier) {}

  outage(): TierUnavailableError {
    return new TierUnavailableError(this.tier, "down");
  }

  /** Makes every call of `method` throw `error` (an outage of the tier by default) until `heal()`. */
  fail(method: M, error: unknown = this.outage()): void {
    this.failures.set(method, error);
  }

  heal(): void {
    this.down = false;
    this.failures.clear();
  }

  callsTo(method: M): (readonly unknown[])[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** Records the call, then throws if the tier is down or the method was told to fail. */
  protected enter(method: M, ...args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.down) throw this.outage();
    if (this.failures.has(method)) throw this.failures.get(method);
  }
}

// ------------------------------------------------------------------ clock and diagnostics

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  constructor(private ms = 1_750_000_000_000) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
}

export interface Warning {
  readonly message: string;
  readonly attributes: Record<string, unknown> | undefined;
}

export class RecordingDiagnostics implements Diagnostics {
  readonly warnings: Warning[] = [];
  warn(message: string, attributes?: Record<string, unknown>): void {
    this.warnings.push({ message, attributes });
  }
  messages(): string[] {
    return this.warnings.map((w) => w.message);
  }
}

// ------------------------------------------------------------------ Redis: connection registry

export class FakeConnectionRegistry extends TierFake<keyof ConnectionRegistry> implements ConnectionRegistry {
  readonly connections = new Map<string, Connection>();
  /** threadId → connection ids, in subscription order. */
  readonly threadSubscribers = new Map<string, Set<string>>();
  /** connectionId → thread ids. */
  readonly connectionThreads = new Map<string, Set<string>>();

  constructor() {
    super("redis");
  }

  async register(connection: Connection): Promise<void> {
    this.enter("register", connection);
    this.connections.set(connection.connectionId, connection);
  }

  async get(connectionId: string): Promise<Connection | null> {
    this.enter("get", connectionId);
    return this.connections.get(connectionId) ?? null;
  }

  async subscribe(connectionId: string, threadId: string): Promise<void> {
    this.enter("subscribe", connectionId, threadId);
    this.addSubscription(connectionId, threadId);
  }

  async unsubscribe(connectionId: string, threadId: string): Promise<void> {
    this.enter("unsubscribe", connectionId, threadId);
    this.threadSubscribers.get(threadId)?.delete(connectionId);
    this.connectionThreads.get(connectionId)?.delete(threadId);
  }

  async subscribers(threadId: string): Promise<string[]> {
    this.enter("subscribers", threadId);
    return this.subscribersOf(threadId);
  }

  async remove(connectionId: string): Promise<void> {
    this.enter("remove", connectionId);
    for (const threadId of this.connectionThreads.get(connectionId) ?? []) {
      this.threadSubscribers.get(threadId)?.delete(connectionId);
    }
    this.connectionThreads.delete(connectionId);
    this.connections.delete(connectionId);
  }

  /** Test set-up: subscribes without going through the outage switch or the call log. */
  addSubscription(connectionId: string, threadId: string): void {
    const subs = this.threadSubscribers.get(threadId) ?? new Set<string>();
    subs.add(connectionId);
    this.threadSubscribers.set(threadId, subs);
    const threads = this.connectionThreads.get(connectionId) ?? new Set<string>();
    threads.add(threadId);
    this.connectionThreads.set(connectionId, threads);
  }

  subscribersOf(threadId: string): string[] {
    return [...(this.threadSubscribers.get(threadId) ?? [])];
  }

  isSubscribed(connectionId: string, threadId: string): boolean {
    return this.threadSubscribers.get(threadId)?.has(connectionId) ?? false;
  }
}

// ------------------------------------------------------------------ Redis: message cache

const idempotencySlot = (threadId: string, key: string): string => `${threadId}\n${key}`;

/**
 * The hot tier, following the contract of the Redis adapter: per thread a record, a seq counter
 * (hybrid clock, Redis lane), idempotency keys and an index of the newest `historySize` messages
 * with a floor from which the index is known to be complete. The subscriber set is read from the
 * registry fake, as Redis keeps both under the thread's hash tag.
 */
export class FakeMessageCache extends TierFake<keyof MessageCache> implements MessageCache {
  readonly threads = new Map<string, Thread>();
  readonly lastSeq = new Map<string, number>();
  readonly idempotency = new Map<string, Message>();
  /** threadId → seq → message. */
  readonly indexes = new Map<string, Map<number, Message>>();
  /** threadId → lowest seq from which the index holds every message of the thread. */
  readonly floors = new Map<string, number>();
  readonly byId = new Map<string, OwnedMessage>();

  constructor(
    private readonly clock: Clock,
    private readonly registry: FakeConnectionRegistry,
    readonly historySize = 50,
  ) {
    super("redis");
  }

  async reserve(input: {
    threadId: string;
    idempotencyKey?: string;
    install?: Thread;
  }): Promise<Reservation> {
    this.enter("reserve", input);
    const { threadId, idempotencyKey, install } = input;
    if (install !== undefined) this.threads.set(threadId, install);
    const thread = this.threads.get(threadId);
    if (thread === undefined) return { kind: "unknown_thread" };
    if (idempotencyKey !== undefined) {
      const original = this.idempotency.get(idempotencySlot(threadId, idempotencyKey));
      if (original !== undefined) return { kind: "replay", thread, message: original };
    }
    const seq = nextSeq(this.lastSeq.get(threadId) ?? 0, this.clock.now(), REDIS_SEQ_LANE);
    this.lastSeq.set(threadId, seq);
    return { kind: "reserved", thread, seq, subscribers: this.registry.subscribersOf(threadId) };
  }

  async store(message: Message, ctx: { ownerId: string; idempotencyKey?: string }): Promise<void> {
    this.enter("store", message, ctx);
    const threadId = message.thread_id;
    const fresh = !this.indexes.has(threadId);
    const index = this.index(threadId);
    index.set(message.seq, message);
    if (fresh || !this.floors.has(threadId)) this.floors.set(threadId, message.seq);
    if (ctx.idempotencyKey !== undefined) {
      this.idempotency.set(idempotencySlot(threadId, ctx.idempotencyKey), message);
    }
    this.trim(threadId);
    this.byId.set(message.id, { message, ownerId: ctx.ownerId });
  }

  async history(threadId: string, query: HistoryQuery): Promise<HistoryPage | null> {
    this.enter("history", threadId, query);
    const floor = this.floors.get(threadId);
    if (floor === undefined) return null;
    const all = [...(this.indexes.get(threadId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
    const { limit } = query;
    if (query.direction === "backward") {
      const { before } = query;
      const rows = all
        .filter((m) => before === undefined || m.seq < before)
        .reverse()
        .slice(0, limit + 1);
      const known = rows.filter((m) => m.seq >= floor);
      if (known.length > limit) {
        const page = known.slice(0, limit).reverse();
        return { messages: page, next_cursor: page[0]?.seq ?? null };
      }
      if (floor !== 0) return null;
      return { messages: known.reverse(), next_cursor: null };
    }
    if (floor > query.after + 1) return null;
    const rows = all.filter((m) => m.seq > query.after).slice(0, limit + 1);
    const page = rows.slice(0, limit);
    return { messages: page, next_cursor: rows.length > limit ? (page.at(-1)?.seq ?? null) : null };
  }

  async getMessage(id: string): Promise<OwnedMessage | null> {
    this.enter("getMessage", id);
    return this.byId.get(id) ?? null;
  }

  async getThread(id: string): Promise<Thread | null> {
    this.enter("getThread", id);
    return this.threads.get(id) ?? null;
  }

  async putThread(thread: Thread): Promise<void> {
    this.enter("putThread", thread);
    this.threads.set(thread.id, thread);
  }

  async warm(threadId: string, messages: readonly Message[], complete: boolean): Promise<void> {
    this.enter("warm", threadId, messages, complete);
    if (messages.length === 0) return;
    const index = this.index(threadId);
    for (const m of messages) if (!index.has(m.seq)) index.set(m.seq, m);
    const candidate = complete ? 0 : Math.min(...messages.map((m) => m.seq));
    const floor = this.floors.get(threadId);
    if (floor === undefined || candidate < floor) this.floors.set(threadId, candidate);
    this.trim(threadId);
  }

  async refresh(entries: readonly OwnedMessage[]): Promise<void> {
    this.enter("refresh", entries);
    for (const { message } of entries) {
      const index = this.indexes.get(message.thread_id);
      if (index === undefined || !this.floors.has(message.thread_id)) continue;
      if (!index.has(message.seq)) index.set(message.seq, message);
      this.trim(message.thread_id);
    }
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }

  /** Redis lost everything (restart, FLUSHALL). */
  flush(): void {
    for (const map of [this.threads, this.lastSeq, this.idempotency, this.indexes, this.floors, this.byId]) {
      map.clear();
    }
  }

  cachedSeqs(threadId: string): number[] {
    return [...(this.indexes.get(threadId)?.keys() ?? [])].sort((a, b) => a - b);
  }

  private index(threadId: string): Map<number, Message> {
    const existing = this.indexes.get(threadId);
    if (existing !== undefined) return existing;
    const created = new Map<number, Message>();
    this.indexes.set(threadId, created);
    return created;
  }

  /** Keeps the newest `historySize` entries and raises the floor past what was dropped. */
  private trim(threadId: string): void {
    const index = this.index(threadId);
    const seqs = [...index.keys()].sort((a, b) => a - b);
    if (seqs.length <= this.historySize) return;
    for (const seq of seqs.slice(0, seqs.length - this.historySize)) index.delete(seq);
    const low = seqs[seqs.length - this.historySize];
    const floor = this.floors.get(threadId);
    if (low !== undefined && (floor === undefined || low > floor)) this.floors.set(threadId, low);
  }
}

// ------------------------------------------------------------------ API Gateway: notifier

/** Records frames per connection; connections in `gone` answer "gone", in `failing` throw. */
export class FakeConnectionNotifier extends TierFake<"send"> implements ConnectionNotifier {
  readonly frames = new Map<string, string[]>();
  readonly gone = new Set<string>();
  readonly failing = new Set<string>();
  /** Called on every send before it is answered (to observe state at that moment). */
  onSend: ((connectionId: string, frame: string) => void) | undefined;

  constructor() {
    super("websocket");
  }

  async send(connectionId: string, frame: string): Promise<DeliveryResult> {
    this.enter("send", connectionId, frame);
    this.onSend?.(connectionId, frame);
    if (this.failing.has(connectionId)) throw this.outage();
    if (this.gone.has(connectionId)) return "gone";
    const list = this.frames.get(connectionId) ?? [];
    list.push(frame);
    this.frames.set(connectionId, list);
    return "sent";
  }

  framesFor(connectionId: string): string[] {
    return this.frames.get(connectionId) ?? [];
  }

  eventsFor(connectionId: string): Record<string, unknown>[] {
    return this.framesFor(connectionId).map((f) => JSON.parse(f) as Record<string, unknown>);
  }
}

export interface PendingSend {
  readonly connectionId: string;
  readonly frame: string;
  release(result?: DeliveryResult): void;
  fail(error: unknown): void;
}

/** A notifier whose sends stay in flight until the test releases them. */
export class GatedNotifier implements ConnectionNotifier {
  readonly pending: PendingSend[] = [];
  readonly started: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  send(connectionId: string, frame: string): Promise<DeliveryResult> {
    return new Promise<DeliveryResult>((resolve, reject) => {
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      this.started.push(connectionId);
      let settled = false;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        this.inFlight--;
        return true;
      };
      this.pending.push({
        connectionId,
        frame,
        release: (result = "sent") => {
          if (settle()) resolve(result);
        },
        fail: (error) => {
          if (settle()) reject(error);
        },
      });
      for (const waiter of this.waiters.filter((w) => this.started.length >= w.count)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    });
  }

  /** Resolves once `count` sends have started in total. */
  untilStarted(count: number): Promise<void> {
    if (this.started.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** Releases the oldest send still in flight. */
  releaseNext(result: DeliveryResult = "sent"): PendingSend {
    const next = this.pending.shift();
    if (next === undefined) throw new Error("no send in flight");
    next.release(result);
    return next;
  }
}

// ------------------------------------------------------------------ PostgreSQL

const compareThreadsDesc = (a: Thread, b: Thread): number =>
  b.created_at_ms - a.created_at_ms || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

const isBefore = (t: Thread, cursor: ThreadCursor): boolean =>
  t.created_at_ms < cursor.created_at_ms || (t.created_at_ms === cursor.created_at_ms && t.id < cursor.id);

export class FakeThreadRepository extends TierFake<keyof ThreadRepository> implements ThreadRepository {
  readonly rows = new Map<string, Thread>();
  /** `threads.last_seq`: shared by `allocateSeq` and the repository's `commit` with `seq: null`. */
  readonly lastSeq = new Map<string, number>();

  constructor(private readonly clock: Clock) {
    super("postgres");
  }

  async create(thread: Thread): Promise<Thread> {
    this.enter("create", thread);
    if (this.rows.has(thread.id)) throw new Error(`duplicate key value violates threads_pkey (${thread.id})`);
    this.put(thread);
    return thread;
  }

  async get(id: string): Promise<Thread | null> {
    this.enter("get", id);
    return this.rows.get(id) ?? null;
  }

  async listByOwner(ownerId: string, page: { limit: number; after?: ThreadCursor }): Promise<Thread[]> {
    this.enter("listByOwner", ownerId, page);
    const { after } = page;
    return [...this.rows.values()]
      .filter((t) => t.owner_id === ownerId && (after === undefined || isBefore(t, after)))
      .sort(compareThreadsDesc)
      .slice(0, page.limit);
  }

  async allocateSeq(threadId: string): Promise<{ thread: Thread; seq: number } | null> {
    this.enter("allocateSeq", threadId);
    const thread = this.rows.get(threadId);
    return thread === undefined ? null : { thread, seq: this.allocate(threadId) };
  }

  /** Test set-up: stores a thread without going through the outage switch or the call log. */
  put(thread: Thread): void {
    this.rows.set(thread.id, thread);
    if (!this.lastSeq.has(thread.id)) this.lastSeq.set(thread.id, 0);
  }

  /** The PostgreSQL lane of the hybrid clock (see `core/sequence.ts`). */
  allocate(threadId: string): number {
    const seq = nextSeq(this.lastSeq.get(threadId) ?? 0, this.clock.now(), POSTGRES_SEQ_LANE);
    this.lastSeq.set(threadId, seq);
    return seq;
  }
}

/** A constraint violation: not an outage, so the core must not treat it as transient. */
export class ConstraintError extends Error {
  override readonly name = "ConstraintError";
}

/**
 * Messages in PostgreSQL: idempotent on the id, with the schema's constraints (thread must exist,
 * unique (thread_id, seq)); ids in `rejectIds` violate a constraint. Statements are atomic.
 */
export class FakeMessageRepository extends TierFake<keyof MessageRepository> implements MessageRepository {
  readonly rows = new Map<string, Message>();
  /** Analytics outbox: message ids in enqueue order. */
  readonly outbox: string[] = [];
  readonly rejectIds = new Set<string>();

  constructor(private readonly threads: FakeThreadRepository) {
    super("postgres");
  }

  async persistBatch(messages: readonly OwnedMessage[]): Promise<CommitResult[]> {
    this.enter("persistBatch", messages);
    const fresh = new Map<string, Message>();
    const existing = new Map<string, Message>();
    for (const { message } of messages) {
      const stored = this.rows.get(message.id);
      if (stored !== undefined) existing.set(message.id, stored);
      else if (!fresh.has(message.id)) fresh.set(message.id, message);
    }
    this.checkInsertable([...fresh.values()]);
    for (const m of fresh.values()) this.rows.set(m.id, m);
    return [
      ...[...fresh.values()].map((message) => ({ message, inserted: true })),
      ...[...existing.values()].map((message) => ({ message, inserted: false })),
    ];
  }

  async commit(message: Omit<Message, "seq"> & { seq: number | null }): Promise<CommitResult | null> {
    this.enter("commit", message);
    if (!this.threads.rows.has(message.thread_id)) return null;
    const seq = message.seq ?? this.threads.allocate(message.thread_id);
    const stored = this.rows.get(message.id);
    if (stored !== undefined) return { message: stored, inserted: false };
    const row: Message = { ...message, seq };
    this.checkInsertable([row]);
    this.rows.set(row.id, row);
    this.outbox.push(row.id);
    return { message: row, inserted: true };
  }

  async findById(id: string): Promise<OwnedMessage | null> {
    this.enter("findById", id);
    const message = this.rows.get(id);
    const thread = message === undefined ? undefined : this.threads.rows.get(message.thread_id);
    return message === undefined || thread === undefined ? null : { message, ownerId: thread.owner_id };
  }

  async history(threadId: string, query: HistoryQuery): Promise<HistoryPage> {
    this.enter("history", threadId, query);
    const all = this.threadMessages(threadId);
    const { limit } = query;
    if (query.direction === "forward") {
      const rows = all.filter((m) => m.seq > query.after).slice(0, limit + 1);
      const page = rows.slice(0, limit);
      return { messages: page, next_cursor: rows.length > limit ? (page.at(-1)?.seq ?? null) : null };
    }
    const { before } = query;
    const rows = all
      .filter((m) => before === undefined || m.seq < before)
      .reverse()
      .slice(0, limit + 1);
    const page = rows.slice(0, limit).reverse();
    return { messages: page, next_cursor: rows.length > limit ? (page[0]?.seq ?? null) : null };
  }

  async count(threadId: string): Promise<number> {
    this.enter("count", threadId);
    return this.threadMessages(threadId).length;
  }

  async pendingOutbox(limit: number): Promise<Message[]> {
    this.enter("pendingOutbox", limit);
    return this.outbox.slice(0, limit).flatMap((id) => {
      const m = this.rows.get(id);
      return m === undefined ? [] : [m];
    });
  }

  async addToOutbox(ids: readonly string[]): Promise<void> {
    this.enter("addToOutbox", ids);
    for (const id of ids) if (!this.outbox.includes(id)) this.outbox.push(id);
  }

  async clearOutbox(ids: readonly string[]): Promise<void> {
    this.enter("clearOutbox", ids);
    const remaining = this.outbox.filter((id) => !ids.includes(id));
    this.outbox.splice(0, this.outbox.length, ...remaining);
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }

  /** Test set-up: stores messages without going through the outage switch or the call log. */
  put(...messages: Message[]): void {
    for (const m of messages) this.rows.set(m.id, m);
  }

  threadMessages(threadId: string): Message[] {
    return [...this.rows.values()].filter((m) => m.thread_id === threadId).sort((a, b) => a.seq - b.seq);
  }

  private checkInsertable(messages: readonly Message[]): void {
    const taken = new Set([...this.rows.values()].map((m) => `${m.thread_id}/${m.seq}`));
    for (const m of messages) {
      if (this.rejectIds.has(m.id)) throw new ConstraintError(`row ${m.id} violates a check constraint`);
      if (!this.threads.rows.has(m.thread_id)) {
        throw new ConstraintError(`insert of ${m.id} violates messages_thread_id_fkey`);
      }
      const slot = `${m.thread_id}/${m.seq}`;
      if (taken.has(slot)) throw new ConstraintError(`insert of ${m.id} violates messages_thread_seq_key`);
      taken.add(slot);
    }
  }
}

// ------------------------------------------------------------------ SQS

export class FakeMessagePublisher extends TierFake<keyof MessagePublisher> implements MessagePublisher {
  readonly envelopes: PersistEnvelope[] = [];

  constructor() {
    super("sqs");
  }

  async publish(envelope: PersistEnvelope): Promise<void> {
    this.enter("publish", envelope);
    this.envelopes.push(envelope);
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }

  /** The queued envelopes as the persist consumer receives them. */
  records(receiveCount = 1): QueueRecord[] {
    return this.envelopes.map((e, i) => ({ id: `persist-${i}`, body: JSON.stringify(e), receiveCount }));
  }
}

export class FakeAnalyticsPublisher extends TierFake<"publish"> implements AnalyticsPublisher {
  readonly batches: Message[][] = [];

  constructor() {
    super("sqs");
  }

  async publish(messages: readonly Message[]): Promise<void> {
    this.enter("publish", messages);
    this.batches.push([...messages]);
  }

  /** The published batches as the analytics consumer receives them. */
  records(receiveCount = 1): QueueRecord[] {
    return this.batches.map((b, i) => ({
      id: `analytics-${i}`,
      body: serializeAnalyticsEnvelope(b),
      receiveCount,
    }));
  }
}

// ------------------------------------------------------------------ ClickHouse

/** The archive, deduplicated by id; ids in `rejectIds` make an insert fail as bad data. */
export class FakeAnalyticsStore extends TierFake<keyof AnalyticsStore> implements AnalyticsStore {
  readonly rows = new Map<string, Message>();
  readonly inserts: Message[][] = [];
  readonly rejectIds = new Set<string>();

  constructor() {
    super("clickhouse");
  }

  async insert(messages: readonly Message[]): Promise<void> {
    this.enter("insert", messages);
    const bad = messages.find((m) => this.rejectIds.has(m.id));
    if (bad !== undefined) throw new ConstraintError(`cannot parse row ${bad.id}`);
    this.inserts.push([...messages]);
    for (const m of messages) this.rows.set(m.id, m);
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }
}

// ------------------------------------------------------------------ Redis: rate limiter

/** Admits every request unless told to refuse; records the keys it was asked about. */
export class FakeRateLimiter extends TierFake<"take"> implements RateLimiter {
  /** When set, every request is refused with this Retry-After. */
  refuseFor: number | undefined;

  constructor() {
    super("redis");
  }

  async take(key: string): Promise<{ readonly allowed: boolean; readonly retryAfterSeconds: number }> {
    this.enter("take", key);
    return this.refuseFor === undefined
      ? { allowed: true, retryAfterSeconds: 0 }
      : { allowed: false, retryAfterSeconds: this.refuseFor };
  }
}

// ------------------------------------------------------------------ auth

export class FakeTokenVerifier implements TokenVerifier {
  readonly tokens = new Map<string, Principal>();

  async verify(token: string): Promise<Principal> {
    const principal = this.tokens.get(token);
    if (principal === undefined) throw new UnauthorizedError("token is not valid");
    return principal;
  }
}

// ------------------------------------------------------------------ messages and threads

let counter = 0;

export const makeThread = (ownerId: string, overrides: Partial<Thread> = {}): Thread => {
  const ms = overrides.created_at_ms ?? 1_700_000_000_000 + counter++;
  return {
    id: newId(),
    owner_id: ownerId,
    title: null,
    metadata: {},
    created_at: toEpochSeconds(ms),
    created_at_ms: ms,
    ...overrides,
  };
};

export const makeMessage = (
  thread: Pick<Thread, "id">,
  seq: number,
  overrides: Partial<Message> = {},
): Message => {
  const ms = overrides.created_at_ms ?? 1_750_000_000_000;
  return {
    id: newId(),
    thread_id: thread.id,
    seq,
    role: "user",
    user_id: "alice",
    content: `message ${seq}`,
    metadata: {},
    client_message_id: null,
    created_at: toEpochSeconds(ms),
    created_at_ms: ms,
    ...overrides,
  };
};

// ------------------------------------------------------------------ wiring

export interface WorldOptions {
  readonly mode?: AcceptMode;
  readonly historyCacheSize?: number;
  readonly retryAfterSeconds?: number;
  readonly fanout?: FanoutOptions;
  readonly replayLimit?: number;
  readonly retry?: RetryPolicy;
  readonly outboxBatchSize?: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseDelaySeconds: 5, maxDelaySeconds: 300 };

/** Every service of the core, wired to fresh fakes. */
export const createWorld = (options: WorldOptions = {}) => {
  const clock = new ManualClock();
  const diagnostics = new RecordingDiagnostics();
  const registry = new FakeConnectionRegistry();
  const historyCacheSize = options.historyCacheSize ?? 50;
  const cache = new FakeMessageCache(clock, registry, historyCacheSize);
  const notifier = new FakeConnectionNotifier();
  const threads = new FakeThreadRepository(clock);
  const messages = new FakeMessageRepository(threads);
  const publisher = new FakeMessagePublisher();
  const analytics = new FakeAnalyticsPublisher();
  const store = new FakeAnalyticsStore();
  const verifier = new FakeTokenVerifier();
  const rateLimiter = new FakeRateLimiter();
  const retryAfterSeconds = options.retryAfterSeconds ?? 7;
  const retry = options.retry ?? DEFAULT_RETRY;
  const fanout = new Fanout(
    notifier,
    registry,
    options.fanout ?? { concurrency: 8, budgetMs: 60_000 },
    diagnostics,
  );
  const messageService = new MessageService(
    { cache, messages, threads, publisher, registry, fanout, rateLimiter, clock, diagnostics },
    { mode: options.mode ?? "queued", historyCacheSize, retryAfterSeconds },
  );
  const threadService = new ThreadService(
    { threads, messages, cache, messageService, rateLimiter, clock, diagnostics },
    retryAfterSeconds,
  );
  const subscriptionService = new SubscriptionService(
    { registry, notifier, verifier, messageService, clock, diagnostics },
    { replayLimit: options.replayLimit ?? 100, retryAfterSeconds },
  );
  const persistService = new PersistService({ messages, analytics, cache, clock, diagnostics }, retry);
  const archiveService = new ArchiveService({ store, clock, diagnostics }, retry);
  const outboxRelay = new OutboxRelay({ messages, analytics }, options.outboxBatchSize ?? 100);

  return {
    clock,
    diagnostics,
    registry,
    cache,
    notifier,
    threads,
    messages,
    publisher,
    analytics,
    store,
    verifier,
    rateLimiter,
    fanout,
    messageService,
    threadService,
    subscriptionService,
    persistService,
    archiveService,
    outboxRelay,
    retryAfterSeconds,
    /** Redis is one tier: the cache, the connection registry and the rate limiter fail together. */
    redisDown(): void {
      cache.down = true;
      registry.down = true;
      rateLimiter.down = true;
    },
    /** A thread that exists in PostgreSQL only (not cached yet). */
    seedThread(ownerId: string, overrides: Partial<Thread> = {}): Thread {
      const thread = makeThread(ownerId, overrides);
      threads.put(thread);
      return thread;
    },
  };
};
