/**
 * In-memory fakes of every port in `lambdas/core/ports.ts`, for unit tests of the core.
 *
 * Each fake that stands for a tier has an outage switch: `down = true` makes every call throw
 * `TierUnavailableError(tier, "down")`, and `fail(method, error?)` makes one method fail (with an
 * outage unless another error is given) until `heal()`. Every call is recorded in `calls`.
 */

import { Acceptor } from "../../lambdas/core/acceptor.ts";
import { ArchiveService } from "../../lambdas/core/archive-service.ts";
import { CommitWriter, QueueFirstWriter } from "../../lambdas/core/durable-writers.ts";
import { type Tier, TierUnavailableError, UnauthorizedError } from "../../lambdas/core/errors.ts";
import { Fanout, type FanoutOptions } from "../../lambdas/core/fanout.ts";
import { HistoryReader } from "../../lambdas/core/history-reader.ts";
import { fingerprintOf, idempotencyKey, newId } from "../../lambdas/core/ids.ts";
import type {
  HistoryQuery,
  Message,
  MessageState,
  Principal,
  StreamPosition,
  Thread,
} from "../../lambdas/core/model.ts";
import { toEpochSeconds } from "../../lambdas/core/model.ts";
import { OutboxRelay } from "../../lambdas/core/outbox-relay.ts";
import { PersistService } from "../../lambdas/core/persist-service.ts";
import type {
  AnalyticsPublisher,
  AnalyticsStore,
  AppendResult,
  ArchivedFilter,
  CachedHistory,
  Clock,
  CommitResult,
  Connection,
  ConnectionNotifier,
  ConnectionRegistry,
  DeliveryResult,
  Diagnostics,
  ErasedThread,
  FinishResult,
  Following,
  HotTierEraser,
  LateVisibility,
  MessageCache,
  MessageEnvelope,
  MessagePublisher,
  MessageRepository,
  OutboxRetryPolicy,
  OwnedMessage,
  PersistEnvelope,
  PositionedMessage,
  RateLimiter,
  ReleaseOutcome,
  Reservation,
  ReserveInput,
  StoredPage,
  StoreResult,
  StreamCheckEnvelope,
  StreamLimits,
  StreamSnapshot,
  StreamStore,
  ThreadChange,
  ThreadCursor,
  ThreadInstall,
  ThreadRepository,
  TokenVerifier,
} from "../../lambdas/core/ports.ts";
import { isStreamCheck } from "../../lambdas/core/ports.ts";
import { queueBytes } from "../../lambdas/core/queue-body.ts";
import {
  type QueueRecord,
  type RetryPolicy,
  serializeAnalyticsEnvelope,
} from "../../lambdas/core/records.ts";
import {
  nextSeq,
  POSTGRES_SEQ_LANE,
  REDIS_SEQ_LANE,
  SEQ_PER_MILLISECOND,
  settledNow,
} from "../../lambdas/core/sequence.ts";
import { StreamService } from "../../lambdas/core/stream-service.ts";
import { SubscriptionService } from "../../lambdas/core/subscription-service.ts";
import { ThreadAccess } from "../../lambdas/core/thread-access.ts";
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
  streaming: false,
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
  private readonly nextFailures = new Map<M, unknown>();

  constructor(readonly tier: Tier) {}

  /** A tier that is down: its circuit is open, so calls are refused before they are sent. */
  outage(): TierUnavailableError {
    return new TierUnavailableError(this.tier, "down", { maybeApplied: false });
  }

  /** A call that timed out: it may have reached the tier and done its work. */
  timedOut(): TierUnavailableError {
    return new TierUnavailableError(this.tier, "timed out", { maybeApplied: true });
  }

  /** Makes every call of `method` throw `error` (an outage of the tier by default) until `heal()`. */
  fail(method: M, error: unknown = this.outage()): void {
    this.failures.set(method, error);
  }

  /** Makes only the next call of `method` throw `error` (an outage of the tier by default). */
  failNext(method: M, error: unknown = this.outage()): void {
    this.nextFailures.set(method, error);
  }

  /**
   * The next call of `method` does its work, then fails like a timeout (`maybeApplied`): the
   * caller cannot tell that it took effect.
   */
  timeOutAfterNext(method: M): void {
    const methods = this as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const original = methods[method];
    if (original === undefined) throw new Error(`no method ${method}`);
    methods[method] = async (...args: unknown[]) => {
      delete methods[method];
      await original.apply(this, args);
      throw new TierUnavailableError(this.tier, "timeout", { maybeApplied: true });
    };
  }

  heal(): void {
    this.down = false;
    this.failures.clear();
    this.nextFailures.clear();
  }

  callsTo(method: M): (readonly unknown[])[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** Records the call, then throws if the tier is down or the method was told to fail. */
  protected enter(method: M, ...args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.down) throw this.outage();
    if (this.nextFailures.has(method)) {
      const error = this.nextFailures.get(method);
      this.nextFailures.delete(method);
      throw error;
    }
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

  async register(connection: Connection): Promise<number> {
    this.enter("register", connection);
    this.connections.set(connection.connectionId, connection);
    return [...this.connections.values()].filter((c) => c.principal.userId === connection.principal.userId)
      .length;
  }

  async get(connectionId: string): Promise<Connection | null> {
    this.enter("get", connectionId);
    return this.connections.get(connectionId) ?? null;
  }

  async subscribe(connectionId: string, threadId: string): Promise<number> {
    this.enter("subscribe", connectionId, threadId);
    const threads = this.connectionThreads.get(connectionId) ?? new Set<string>();
    threads.add(threadId);
    this.connectionThreads.set(connectionId, threads);
    return threads.size;
  }

  async unsubscribe(connectionId: string, threadId: string): Promise<void> {
    this.enter("unsubscribe", connectionId, threadId);
    this.threadSubscribers.get(threadId)?.delete(connectionId);
    this.connectionThreads.get(connectionId)?.delete(threadId);
  }

  async remove(connectionId: string): Promise<void> {
    this.enter("remove", connectionId);
    for (const threadId of this.connectionThreads.get(connectionId) ?? []) {
      this.threadSubscribers.get(threadId)?.delete(connectionId);
    }
    this.connectionThreads.delete(connectionId);
    this.connections.delete(connectionId);
  }

  /** The thread's side of a subscription (`MessageCache.follow` joins it, as Redis does in one slot). */
  joinThread(connectionId: string, threadId: string): void {
    const subs = this.threadSubscribers.get(threadId) ?? new Set<string>();
    subs.add(connectionId);
    this.threadSubscribers.set(threadId, subs);
  }

  /** Test set-up: subscribes without going through the outage switch or the call log. */
  addSubscription(connectionId: string, threadId: string): void {
    this.joinThread(connectionId, threadId);
    const threads = this.connectionThreads.get(connectionId) ?? new Set<string>();
    threads.add(threadId);
    this.connectionThreads.set(connectionId, threads);
  }

  /** Redis lost everything. */
  flush(): void {
    this.connections.clear();
    this.threadSubscribers.clear();
    this.connectionThreads.clear();
  }

  subscribersOf(threadId: string): string[] {
    return [...(this.threadSubscribers.get(threadId) ?? [])];
  }

  isSubscribed(connectionId: string, threadId: string): boolean {
    return this.threadSubscribers.get(threadId)?.has(connectionId) ?? false;
  }
}

const idempotencySlot = (threadId: string, key: string): string => `${threadId}\n${key}`;

// ------------------------------------------------------------------ Redis: message cache

interface FakeThreadState {
  /** null: forgotten (a changed thread): the next use installs it again. */
  meta: Thread | null;
  seq: number;
  pos: number;
  epoch: string;
  floor: number;
  verifyUntil: number;
  /** seq → message (the index). */
  index: Map<number, Message>;
  /** seq → deadline: reservations not resolved yet. */
  pending: Map<number, number>;
  /** seq → deadline: visible messages PostgreSQL has not confirmed. */
  unpersisted: Map<number, number>;
  /** pos → seq: the replay log (one entry per seq; the newest `logSize` positions). */
  log: Map<number, number>;
}

/**
 * A key's record (every key's, also one the server made up). Complete records keep the seq, not the
 * message: a replay reads it from the index, or by id. `x`: what the holding try was told ("k" it
 * took the reservation over, "v" it must verify), told again when it repeats the call.
 */
type IdemRecord =
  | { s: "p"; t: string; q: number; c: number; h: string; d: number; u: boolean; x: "" | "k" | "v" }
  /** Visible: `t` and `p` are the try that made it visible and its position (absent when refreshed). */
  | { s: "c"; h: string; q: number; t?: string; p?: number };

const FAKE_SEQ_LANE = REDIS_SEQ_LANE;

/**
 * The hot tier in memory, following the contract the Redis adapter's Lua scripts follow
 * (test/contracts/message-cache.contract.ts runs the same cases against both). The thread
 * subscriber sets live in the registry fake, as Redis keeps them under the thread's hash tag.
 */
export class FakeMessageCache extends TierFake<keyof MessageCache> implements MessageCache {
  readonly states = new Map<string, FakeThreadState>();
  readonly idempotency = new Map<string, IdemRecord>();
  readonly byId = new Map<string, OwnedMessage>();
  private epochs = 0;

  constructor(
    private readonly clock: Clock,
    private readonly registry: FakeConnectionRegistry,
    readonly options: {
      historySize: number;
      persistBoundMs: number;
      leaseMs: number;
      idempotencyTtlSeconds: number;
      logSize: number;
    } = {
      historySize: 50,
      persistBoundMs: 60_000,
      leaseMs: 15_000,
      idempotencyTtlSeconds: 86_400,
      logSize: 100,
    },
  ) {
    super("redis");
  }

  /** Threads marked gone (deleted): never installed again until the mark goes. */
  readonly gone = new Set<string>();

  async install(input: ThreadInstall): Promise<void> {
    this.enter("install", input.thread, input.lastSeq, input.genesis);
    if (this.gone.has(input.thread.id)) return;
    this.put(input);
  }

  /** A streamed reply ended: the index shows its final form where it showed the opened one. */
  replaceShown(final: Message): void {
    const state = this.states.get(final.thread_id);
    if (state?.index.has(final.seq)) state.index.set(final.seq, final);
  }

  /** Test set-up: installs a thread's hot state without going through the outage switch or the call log. */
  put({ thread, lastSeq, genesis }: ThreadInstall): void {
    const existing = this.states.get(thread.id);
    if (existing !== undefined) {
      existing.meta = thread;
      return;
    }
    const now = this.clock.now();
    const base = {
      meta: thread,
      pos: 0,
      epoch: `e${++this.epochs}`,
      index: new Map<number, Message>(),
      pending: new Map<number, number>(),
      unpersisted: new Map<number, number>(),
      log: new Map<number, number>(),
    };
    if (genesis) {
      this.states.set(thread.id, { ...base, seq: lastSeq, floor: 0, verifyUntil: 0 });
      return;
    }
    const { persistBoundMs, idempotencyTtlSeconds } = this.options;
    const floor = Math.max(lastSeq + 1, now * SEQ_PER_MILLISECOND);
    const windowMs = idempotencyTtlSeconds * 1000;
    this.states.set(thread.id, {
      ...base,
      seq: floor - 1,
      floor,
      verifyUntil:
        Math.floor(lastSeq / SEQ_PER_MILLISECOND) > now - windowMs ? now + windowMs : now + persistBoundMs,
    });
  }

  async updateThread(thread: Thread): Promise<readonly string[]> {
    this.enter("updateThread", thread.id);
    const state = this.states.get(thread.id);
    if (state !== undefined) state.meta = null;
    return this.registry.subscribersOf(thread.id);
  }

  async getThread(id: string): Promise<Thread | null> {
    this.enter("getThread", id);
    return this.states.get(id)?.meta ?? null;
  }

  async reserve(input: ReserveInput): Promise<Reservation> {
    this.enter("reserve", input);
    const st = this.states.get(input.threadId);
    const meta = st?.meta ?? null;
    if (st === undefined || meta === null) return { kind: "unknown_thread" };
    if (input.ownerId !== null && meta.owner_id !== input.ownerId) return { kind: "not_found" };
    const now = this.clock.now();
    const slot = idempotencySlot(input.threadId, input.idempotencyKey);
    const rec = this.idempotency.get(slot);
    if (rec !== undefined) {
      if (rec.h !== input.fingerprint) return { kind: "mismatch" };
      if (rec.s === "c") return { kind: "replay", thread: meta, message: st.index.get(rec.q) ?? null };
      const reserved = (takeover: boolean, verify: boolean) =>
        ({
          kind: "reserved",
          thread: meta,
          seq: rec.q,
          createdAtMs: rec.c,
          takeover,
          verify,
        }) as const;
      // The same try repeating a call that timed out is told what it was told the first time.
      if (rec.t === input.token) return reserved(rec.x === "k", rec.x === "v");
      if (rec.u || rec.d < now) {
        rec.t = input.token;
        rec.d = now + this.options.leaseMs;
        rec.u = false;
        rec.x = "k";
        st.pending.set(rec.q, now + this.options.persistBoundMs);
        return reserved(true, false);
      }
      return { kind: "in_progress" };
    }
    const seq = nextSeq(st.seq, now, FAKE_SEQ_LANE);
    st.seq = seq;
    st.pending.set(seq, now + this.options.persistBoundMs);
    const verify = input.clientSupplied && now < st.verifyUntil;
    this.idempotency.set(slot, {
      s: "p",
      t: input.token,
      q: seq,
      c: input.nowMs,
      h: input.fingerprint,
      d: now + this.options.leaseMs,
      u: false,
      x: verify ? "v" : "",
    });
    return { kind: "reserved", thread: meta, seq, createdAtMs: input.nowMs, takeover: false, verify };
  }

  async store(
    message: Message,
    ctx: {
      ownerId: string;
      idempotencyKey: string;
      fingerprint: string;
      token: string;
      queued: boolean;
    },
  ): Promise<StoreResult> {
    this.enter("store", message, ctx);
    this.byId.set(message.id, { message, ownerId: ctx.ownerId });
    const st = this.states.get(message.thread_id);
    if (st === undefined) {
      // A deleted thread (marked gone): the lookup written beside the script goes again.
      if (this.gone.has(message.thread_id)) this.byId.delete(message.id);
      return { kind: "lost" };
    }
    const slot = idempotencySlot(message.thread_id, ctx.idempotencyKey);
    const rec = this.idempotency.get(slot);
    const subscribers = this.registry.subscribersOf(message.thread_id);
    if (rec?.s === "c") {
      // The same try repeating a call that timed out gets its own position back.
      if (rec.t === ctx.token && rec.p !== undefined) {
        return { kind: "visible", position: { epoch: st.epoch, pos: rec.p }, subscribers };
      }
      return { kind: "replay", message: st.index.get(rec.q) ?? null };
    }
    // A state made anew above this seq: reads look for it below the floor, in PostgreSQL.
    if (message.seq < st.floor) return { kind: "lost" };
    const now = this.clock.now();
    st.index.set(message.seq, message);
    st.pending.delete(message.seq);
    if (ctx.queued) st.unpersisted.set(message.seq, now + this.options.persistBoundMs);
    const pos = this.visible(st, message.seq);
    this.idempotency.set(slot, { s: "c", h: ctx.fingerprint, q: message.seq, t: ctx.token, p: pos });
    this.trim(st, now);
    return { kind: "visible", position: { epoch: st.epoch, pos }, subscribers };
  }

  async release(input: {
    threadId: string;
    seq: number;
    idempotencyKey: string;
    token: string;
    fingerprint: string;
    createdAtMs: number;
    outcome: ReleaseOutcome;
  }): Promise<void> {
    this.enter("release", input);
    const st = this.states.get(input.threadId);
    const slot = idempotencySlot(input.threadId, input.idempotencyKey);
    const rec = this.idempotency.get(slot);
    const mine = rec?.s === "p" && rec.t === input.token;
    const { outcome } = input;
    const now = this.clock.now();
    if (outcome.kind === "replayed") {
      st?.pending.delete(input.seq);
      this.idempotency.set(slot, { s: "c", h: input.fingerprint, q: outcome.message.seq });
    } else if (outcome.kind === "unknown") {
      if (st?.pending.has(input.seq)) st.pending.set(input.seq, now + this.options.persistBoundMs);
      if (mine && rec?.s === "p") rec.u = true;
      else if (rec === undefined) {
        // A key the server made up: the client retries with it, and takes the reservation over.
        this.idempotency.set(slot, {
          s: "p",
          t: input.token,
          q: input.seq,
          c: input.createdAtMs,
          h: input.fingerprint,
          d: now + this.options.leaseMs,
          u: true,
          x: "",
        });
      }
    } else {
      st?.pending.delete(input.seq);
      if (mine) this.idempotency.delete(slot);
    }
  }

  async history(threadId: string, query: HistoryQuery): Promise<CachedHistory | null> {
    this.enter("history", threadId, query);
    const st = this.states.get(threadId);
    if (st === undefined) return null;
    const position = { epoch: st.epoch, pos: st.pos };
    const all = [...st.index.values()].sort((a, b) => a.seq - b.seq);
    const count = query.limit + 1;
    const { floor } = st;
    if (query.direction === "backward") {
      const { before } = query;
      const rows = all
        .filter((m) => m.seq >= floor && (before === undefined || m.seq < before))
        .reverse()
        .slice(0, count);
      return { floor, position, rows };
    }
    const low =
      query.after >= floor - 1 ? (m: Message) => m.seq > query.after : (m: Message) => m.seq >= floor;
    return { floor, position, rows: all.filter(low).slice(0, count) };
  }

  async follow(
    threadId: string,
    connectionId: string,
    since: StreamPosition | null,
    limit: number,
  ): Promise<Following | null> {
    this.enter("follow", threadId, connectionId, since, limit);
    const st = this.states.get(threadId);
    if (st === undefined) return null;
    this.registry.joinThread(connectionId, threadId);
    const position = { epoch: st.epoch, pos: st.pos };
    const cannot = { position, replay: null };
    if (since === null || since.epoch !== st.epoch || since.pos > st.pos || st.pos - since.pos > limit) {
      return cannot;
    }
    const entries = [...st.log].filter(([pos]) => pos > since.pos).sort(([a], [b]) => a - b);
    if (entries.length !== st.pos - since.pos) return cannot;
    const replay: PositionedMessage[] = [];
    for (const [pos, seq] of entries) {
      const message = st.index.get(seq);
      if (message === undefined) return cannot;
      replay.push({ message, pos });
    }
    return { position, replay };
  }

  async warm(threadId: string, messages: readonly Message[], complete: boolean): Promise<void> {
    this.enter("warm", threadId, messages, complete);
    const st = this.states.get(threadId);
    if (st === undefined || (messages.length === 0 && !complete)) return;
    for (const m of messages) if (m.seq < st.floor && !st.index.has(m.seq)) st.index.set(m.seq, m);
    const candidate = complete ? 0 : Math.min(...messages.map((m) => m.seq));
    if (candidate < st.floor) st.floor = candidate;
    this.trim(st, this.clock.now());
  }

  async refresh(messages: readonly Message[]): Promise<LateVisibility[]> {
    this.enter("refresh", messages);
    const now = this.clock.now();
    const byThread = new Map<string, Message[]>();
    for (const m of messages) byThread.set(m.thread_id, [...(byThread.get(m.thread_id) ?? []), m]);
    const result: LateVisibility[] = [];
    for (const [threadId, list] of byThread) {
      const st = this.states.get(threadId);
      if (st === undefined) continue;
      const made: PositionedMessage[] = [];
      for (const m of list) {
        st.unpersisted.delete(m.seq);
        const slot = idempotencySlot(
          threadId,
          idempotencyKey(m.user_id, m.client_message_id ?? `id:${m.id}`),
        );
        const rec = this.idempotency.get(slot);
        const complete = rec?.s === "c";
        // Shown with another seq than PostgreSQL kept: corrected to the stored one.
        const stale = rec?.s === "c" && rec.q !== m.seq;
        if (stale) st.index.delete(rec.q);
        // The index keeps every visible message until it is confirmed: not in it, not visible.
        // At or above the floor the index must hold it, whatever its key's record says.
        if (stale || (!st.index.has(m.seq) && (!complete || m.seq >= st.floor))) {
          st.index.set(m.seq, m);
          st.pending.delete(m.seq);
          const pos = this.visible(st, m.seq);
          // A try still holding the key keeps it: its own store then answers with this position.
          const holder = rec?.s === "p" ? rec.t : undefined;
          this.idempotency.set(slot, { s: "c", h: fingerprintOf(m), q: m.seq, t: holder, p: pos });
          made.push({ message: m, pos });
        }
      }
      if (made.length === 0) continue;
      this.trim(st, now);
      result.push({
        threadId,
        epoch: st.epoch,
        subscribers: this.registry.subscribersOf(threadId),
        messages: made,
      });
    }
    return result;
  }

  async getMessage(id: string): Promise<OwnedMessage | null> {
    this.enter("getMessage", id);
    return this.byId.get(id) ?? null;
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }

  /** Redis lost everything (restart, FLUSHALL). */
  flush(): void {
    this.states.clear();
    this.idempotency.clear();
    this.byId.clear();
    this.registry.flush();
  }

  cachedSeqs(threadId: string): number[] {
    return [...(this.states.get(threadId)?.index.keys() ?? [])].sort((a, b) => a - b);
  }

  /** Seqs reserved in the thread and not resolved yet (whatever their deadline). */
  pendingSeqs(threadId: string): number[] {
    return [...(this.states.get(threadId)?.pending.keys() ?? [])].sort((a, b) => a - b);
  }

  /** Gives a message the thread's next stream position and logs it for replay. */
  private visible(st: FakeThreadState, seq: number): number {
    st.pos += 1;
    for (const [pos, logged] of st.log) if (logged === seq) st.log.delete(pos);
    st.log.set(st.pos, seq);
    const positions = [...st.log.keys()].sort((a, b) => a - b);
    for (const pos of positions.slice(0, Math.max(0, positions.length - this.options.logSize)))
      st.log.delete(pos);
    return st.pos;
  }

  /** The lowest entry whose deadline has not passed (expired ones are dropped on the way). */
  private liveMin(entries: Map<number, number>, now: number): number | undefined {
    for (const seq of [...entries.keys()].sort((a, b) => a - b)) {
      if ((entries.get(seq) ?? 0) >= now) return seq;
      entries.delete(seq);
    }
    return undefined;
  }

  private trim(st: FakeThreadState, now: number): void {
    const seqs = [...st.index.keys()].sort((a, b) => a - b);
    const { historySize } = this.options;
    if (seqs.length <= historySize) return;
    let keep = seqs[seqs.length - historySize] as number;
    const p = this.liveMin(st.pending, now);
    if (p !== undefined && p < keep) keep = p;
    const u = this.liveMin(st.unpersisted, now);
    if (u !== undefined && u < keep) keep = u;
    const dropped = seqs.filter((seq) => seq < keep);
    if (dropped.length === 0) return;
    for (const seq of dropped) st.index.delete(seq);
    if (keep > st.floor) st.floor = keep;
  }
}

// ------------------------------------------------------------------ API Gateway: notifier

/** Records frames per connection; connections in `gone` answer "gone", in `failing` throw. */
export class FakeConnectionNotifier extends TierFake<"send" | "disconnect"> implements ConnectionNotifier {
  readonly frames = new Map<string, string[]>();
  /** Connections closed through the Management API. */
  readonly closed: string[] = [];
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

  async disconnect(connectionId: string): Promise<void> {
    this.enter("disconnect", connectionId);
    this.closed.push(connectionId);
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
  async disconnect(): Promise<void> {}
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
  /** `threads.last_seq`: what the repository's `commit` with `seq: null` allocates from. */
  readonly lastSeq = new Map<string, number>();

  constructor(private readonly clock: Clock) {
    super("postgres");
  }

  /** The database's clock (the message repository's outbox uses it too). */
  now(): number {
    return this.clock.now();
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

  async getForInstall(id: string): Promise<ThreadInstall | null> {
    this.enter("getForInstall", id);
    const thread = this.rows.get(id);
    if (thread === undefined) return null;
    const stored = this.messages?.threadMessages(id).at(-1)?.seq ?? 0;
    return { thread, lastSeq: Math.max(this.lastSeq.get(id) ?? 0, stored), genesis: false };
  }

  /** The messages table, for `getForInstall`'s highest seq (set by FakeMessageRepository). */
  messages: FakeMessageRepository | undefined;

  async listByOwner(
    ownerId: string,
    page: { limit: number; after?: ThreadCursor; archived?: ArchivedFilter },
  ): Promise<Thread[]> {
    this.enter("listByOwner", ownerId, page);
    const { after } = page;
    const archived = page.archived ?? "exclude";
    const shown = (t: Thread): boolean =>
      archived === "include" || (archived === "only") === (t.archived_at_ms !== undefined);
    return [...this.rows.values()]
      .filter((t) => t.owner_id === ownerId && shown(t) && (after === undefined || isBefore(t, after)))
      .sort(compareThreadsDesc)
      .slice(0, page.limit);
  }

  async update(id: string, change: ThreadChange, nowMs: number): Promise<Thread | null> {
    this.enter("update", id, change);
    const thread = this.rows.get(id);
    if (thread === undefined) return null;
    const { archived_at_ms, ...rest } = thread;
    const archivedAt =
      change.archived === undefined
        ? archived_at_ms
        : change.archived
          ? (archived_at_ms ?? nowMs)
          : undefined;
    const updated: Thread = {
      ...rest,
      ...(change.title !== undefined ? { title: change.title } : {}),
      ...(change.metadata !== undefined ? { metadata: change.metadata } : {}),
      ...(archivedAt !== undefined ? { archived_at_ms: archivedAt } : {}),
    };
    this.rows.set(id, updated);
    return updated;
  }

  async listByAgent(agent: string, page: { limit: number; after?: ThreadCursor }): Promise<Thread[]> {
    this.enter("listByAgent", agent, page);
    const { after } = page;
    return [...this.rows.values()]
      .filter((t) => t.metadata.agent === agent && (after === undefined || isBefore(t, after)))
      .sort(compareThreadsDesc)
      .slice(0, page.limit);
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
  /** Outbox entries that failed on their own: attempts, when due again (Infinity: parked), why. */
  readonly outboxRetries = new Map<string, { attempts: number; dueAt: number; lastError: string }>();
  readonly rejectIds = new Set<string>();

  constructor(private readonly threads: FakeThreadRepository) {
    super("postgres");
    threads.messages = this;
  }

  /** Threads erased (thread_tombstones): their messages are dropped, never stored. */
  readonly tombstones = new Set<string>();

  async persistBatch(messages: readonly OwnedMessage[]): Promise<CommitResult[]> {
    this.enter("persistBatch", messages);
    const fresh = new Map<string, Message>();
    const existing = new Map<string, Message>();
    const updated = new Map<string, Message>();
    const dropped = new Map<string, Message>();
    const final = (m: Message): boolean => m.state !== undefined && m.state !== "streaming";
    for (const { message } of messages) {
      if (this.tombstones.has(message.thread_id) && !this.threads.rows.has(message.thread_id)) {
        dropped.set(message.id, message);
        continue;
      }
      const stored = this.rows.get(message.id);
      if (stored !== undefined) {
        // A streamed reply's final form replaces its opened row (the first ending stored wins).
        if (stored.state === "streaming" && final(message) && !updated.has(message.id)) {
          updated.set(message.id, {
            ...message,
            seq: stored.seq,
            created_at_ms: stored.created_at_ms,
            created_at: stored.created_at,
          });
        } else if (!updated.has(message.id)) existing.set(message.id, stored);
      } else if (!fresh.has(message.id)) fresh.set(message.id, message);
    }
    this.checkInsertable([...fresh.values()]);
    for (const m of fresh.values()) this.rows.set(m.id, m);
    for (const m of updated.values()) this.rows.set(m.id, m);
    return [
      ...[...fresh.values(), ...updated.values()].map((message) => ({ message, inserted: true })),
      ...[...existing.values()].map((message) => ({ message, inserted: false })),
      ...[...dropped.values()].map((message) => ({ message, inserted: false, erased: true as const })),
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

  async history(threadId: string, query: HistoryQuery, below?: number): Promise<StoredPage> {
    this.enter("history", threadId, query, below);
    const all = this.threadMessages(threadId).filter((m) => below === undefined || m.seq < below);
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
    const now = this.threads.now();
    return this.outbox
      .filter((id) => (this.outboxRetries.get(id)?.dueAt ?? Number.NEGATIVE_INFINITY) <= now)
      .slice(0, limit)
      .flatMap((id) => {
        const m = this.rows.get(id);
        return m === undefined ? [] : [m];
      });
  }

  async deferOutbox(id: string, reason: string, policy: OutboxRetryPolicy): Promise<void> {
    this.enter("deferOutbox", id, reason, policy);
    if (!this.outbox.includes(id)) return;
    const attempts = this.outboxRetries.get(id)?.attempts ?? 0;
    const delayMs = Math.min(policy.baseDelaySeconds * 2 ** attempts, policy.maxDelaySeconds) * 1000;
    this.outboxRetries.set(id, {
      attempts: attempts + 1,
      dueAt: attempts + 1 >= policy.maxAttempts ? Number.POSITIVE_INFINITY : this.threads.now() + delayMs,
      lastError: reason.slice(0, 1000),
    });
  }

  async parkedOutbox(): Promise<number> {
    this.enter("parkedOutbox");
    return this.outbox.filter((id) => this.outboxRetries.get(id)?.dueAt === Number.POSITIVE_INFINITY).length;
  }

  async addToOutbox(ids: readonly string[]): Promise<void> {
    this.enter("addToOutbox", ids);
    for (const id of ids) if (!this.outbox.includes(id)) this.outbox.push(id);
  }

  async clearOutbox(ids: readonly string[]): Promise<void> {
    this.enter("clearOutbox", ids);
    const remaining = this.outbox.filter((id) => !ids.includes(id));
    this.outbox.splice(0, this.outbox.length, ...remaining);
    for (const id of ids) this.outboxRetries.delete(id);
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

// ------------------------------------------------------------------ streams

interface FakeStream {
  state: MessageState;
  index: number;
  base: number;
  count: number;
  bytes: number;
  content: string;
  openedAtMs: number;
  firstDeltaAtMs: number | null;
  lastAppendAtMs: number;
  opened: Message;
  final: Message | null;
}

/**
 * Streamed replies in memory, following the contract the Redis adapter's scripts follow
 * (test/contracts/stream-store.contract.ts runs the same cases against both). It shares the
 * message cache's index and lookup by id, and the registry's subscriber sets, as Redis does.
 */
export class FakeStreamStore extends TierFake<keyof StreamStore> implements StreamStore {
  readonly streams = new Map<string, FakeStream>();
  /** Endings in order, with the thread's stream position when each happened. */
  readonly ended: { id: string; threadId: string; pos: number }[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly cache: FakeMessageCache,
    private readonly registry: FakeConnectionRegistry,
  ) {
    super("redis");
  }

  async open(opened: Message, ownerId: string | null, baseIndex: number): Promise<void> {
    this.enter("open", opened.id);
    if (this.streams.has(opened.id)) return;
    this.streams.set(opened.id, {
      state: "streaming",
      index: baseIndex - 1,
      base: baseIndex,
      count: 0,
      bytes: 0,
      content: "",
      openedAtMs: opened.created_at_ms,
      firstDeltaAtMs: null,
      lastAppendAtMs: this.clock.now(),
      opened,
      final: null,
    });
    if (ownerId !== null && !this.cache.byId.has(opened.id)) {
      this.cache.byId.set(opened.id, { message: opened, ownerId });
    }
  }

  async append(
    threadId: string,
    messageId: string,
    delta: { index: number; text: string },
    limits: StreamLimits,
  ): Promise<AppendResult> {
    this.enter("append", messageId, delta.index);
    const s = this.streams.get(messageId);
    if (s === undefined || s.opened.thread_id !== threadId) return { kind: "missing" };
    if (s.state !== "streaming") return { kind: "not_streaming", state: s.state };
    if (delta.index < s.index) return { kind: "duplicate" };
    if (delta.index === s.index) {
      return s.content.endsWith(delta.text)
        ? { kind: "duplicate", resend: [...(this.registry.threadSubscribers.get(threadId) ?? [])] }
        : { kind: "duplicate" };
    }
    const now = this.clock.now();
    if (now - s.lastAppendAtMs > limits.idleTimeoutMs) return { kind: "idle" };
    if (delta.index > s.index + 1) return { kind: "out_of_order", expected: s.index + 1 };
    const bytes = s.bytes + queueBytes(delta.text);
    if (s.count + 1 > limits.maxDeltas || bytes > limits.maxBytes) return { kind: "too_large" };
    Object.assign(s, {
      index: delta.index,
      count: s.count + 1,
      bytes,
      content: s.content + delta.text,
      lastAppendAtMs: now,
      firstDeltaAtMs: s.firstDeltaAtMs ?? now,
    });
    return { kind: "appended", subscribers: [...(this.registry.threadSubscribers.get(threadId) ?? [])] };
  }

  async snapshot(threadId: string, messageId: string): Promise<StreamSnapshot | null> {
    this.enter("snapshot", messageId);
    const s = this.streams.get(messageId);
    return s === undefined || s.opened.thread_id !== threadId ? null : this.toSnapshot(messageId, s);
  }

  async openStreams(threadId: string): Promise<StreamSnapshot[]> {
    this.enter("openStreams", threadId);
    return [...this.streams.entries()]
      .filter(([, s]) => s.opened.thread_id === threadId && s.state === "streaming")
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, s]) => this.toSnapshot(id, s));
  }

  async finish(final: Message, ownerId: string, expectedIndex: number): Promise<FinishResult> {
    this.enter("finish", final.id, final.state);
    const s = this.streams.get(final.id);
    if (s === undefined) return { kind: "missing" };
    if (s.state !== "streaming") {
      if (s.final !== null) this.cache.byId.set(final.id, { message: s.final, ownerId });
      return {
        kind: "ended",
        state: s.state,
        final: s.final,
        subscribers: [...(this.registry.threadSubscribers.get(final.thread_id) ?? [])],
      };
    }
    if (s.index !== expectedIndex) return { kind: "changed" };
    s.state = final.state ?? "complete";
    s.final = final;
    s.content = "";
    this.ended.push({
      id: final.id,
      threadId: final.thread_id,
      pos: this.cache.states.get(final.thread_id)?.pos ?? 0,
    });
    this.cache.replaceShown(final);
    this.cache.byId.set(final.id, { message: final, ownerId });
    return {
      kind: "finished",
      subscribers: [...(this.registry.threadSubscribers.get(final.thread_id) ?? [])],
    };
  }

  async endedSince(threadId: string, pos: number, limit: number): Promise<Message[]> {
    this.enter("endedSince", threadId, pos);
    return this.ended
      .filter((e) => e.threadId === threadId && e.pos >= pos)
      .sort((a, b) => a.pos - b.pos || (a.id < b.id ? -1 : 1))
      .slice(0, limit)
      .flatMap((e) => {
        const final = this.streams.get(e.id)?.final;
        return final ? [final] : [];
      });
  }

  /** Redis lost everything. */
  clear(): void {
    this.streams.clear();
    this.ended.length = 0;
  }

  private toSnapshot(messageId: string, s: FakeStream): StreamSnapshot {
    return {
      messageId,
      threadId: s.opened.thread_id,
      state: s.state,
      deltaIndex: s.index,
      content: s.content,
      baseIndex: s.base,
      deltaCount: s.count,
      bytes: s.bytes,
      openedAtMs: s.openedAtMs,
      firstDeltaAtMs: s.firstDeltaAtMs,
      lastAppendAtMs: s.lastAppendAtMs,
      opened: s.opened,
      final: s.final,
    };
  }
}

// ------------------------------------------------------------------ SQS

export class FakeMessagePublisher extends TierFake<keyof MessagePublisher> implements MessagePublisher {
  readonly envelopes: MessageEnvelope[] = [];
  /** Stream checks, with the delay they were sent with. */
  readonly checks: { envelope: StreamCheckEnvelope; delaySeconds: number }[] = [];

  constructor() {
    super("sqs");
  }

  /** Runs while a publish is in flight, before SQS takes the envelope (to interleave other work). */
  onPublish: ((envelope: PersistEnvelope) => Promise<void>) | undefined;

  async publish(envelope: PersistEnvelope, options?: { delaySeconds?: number }): Promise<void> {
    this.enter("publish", envelope);
    await this.onPublish?.(envelope);
    if (isStreamCheck(envelope)) this.checks.push({ envelope, delaySeconds: options?.delaySeconds ?? 0 });
    else this.envelopes.push(envelope);
  }

  async ping(): Promise<void> {
    this.enter("ping");
  }

  /** The queued envelopes as the persist consumer receives them. */
  records(receiveCount = 1): QueueRecord[] {
    return this.envelopes.map((e, i) => ({ id: `persist-${i}`, body: JSON.stringify(e), receiveCount }));
  }
}

/** The analytics queue; a batch with an id in `rejectIds` is refused as bad data (not an outage). */
export class FakeAnalyticsPublisher extends TierFake<"publish"> implements AnalyticsPublisher {
  readonly batches: Message[][] = [];
  readonly rejectIds = new Set<string>();

  constructor() {
    super("sqs");
  }

  async publish(messages: readonly Message[]): Promise<void> {
    this.enter("publish", messages);
    const bad = messages.find((m) => this.rejectIds.has(m.id));
    if (bad !== undefined) throw new ConstraintError(`cannot publish ${bad.id}`);
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

  /** Threads ClickHouse holds a tombstone for. */
  readonly erased = new Set<string>();

  async erasedAmong(threadIds: readonly string[]): Promise<ReadonlySet<string>> {
    this.enter("erasedAmong", threadIds);
    return new Set(threadIds.filter((id) => this.erased.has(id)));
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
  readonly mode?: "queued" | "sync";
  readonly historyCacheSize?: number;
  readonly persistBoundMs?: number;
  readonly leaseMs?: number;
  readonly fanout?: FanoutOptions;
  readonly replayLimit?: number;
  readonly retry?: RetryPolicy;
  readonly outboxBatchSize?: number;
  readonly streamIdleTimeoutMs?: number;
  readonly streamMaxDeltas?: number;
  readonly streamMaxBytes?: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseDelaySeconds: 5, maxDelaySeconds: 300 };

/** Every service of the core, wired to fresh fakes. */
export const createWorld = (options: WorldOptions = {}) => {
  const clock = new ManualClock();
  const diagnostics = new RecordingDiagnostics();
  const registry = new FakeConnectionRegistry();
  const historyCacheSize = options.historyCacheSize ?? 50;
  const persistBoundMs = options.persistBoundMs ?? 60_000;
  const cache = new FakeMessageCache(clock, registry, {
    historySize: historyCacheSize,
    persistBoundMs,
    leaseMs: options.leaseMs ?? 15_000,
    idempotencyTtlSeconds: 86_400,
    logSize: options.replayLimit ?? 100,
  });
  /** The settled cursor every component reports, by the world's clock and persist bound. */
  const settled = settledNow(clock, persistBoundMs);
  const notifier = new FakeConnectionNotifier();
  const threads = new FakeThreadRepository(clock);
  const messages = new FakeMessageRepository(threads);
  const publisher = new FakeMessagePublisher();
  const analytics = new FakeAnalyticsPublisher();
  const store = new FakeAnalyticsStore();
  const verifier = new FakeTokenVerifier();
  const rateLimiter = new FakeRateLimiter();
  const retry = options.retry ?? DEFAULT_RETRY;
  const fanout = new Fanout(
    notifier,
    registry,
    options.fanout ?? { concurrency: 8, budgetMs: 60_000 },
    diagnostics,
  );
  /** The acceptor's waits for a try in flight: their lengths, and what else happens meanwhile. */
  const pauses: { readonly log: number[]; during: ((ms: number) => Promise<void>) | undefined } = {
    log: [],
    during: undefined,
  };
  const access = new ThreadAccess({ cache, threads, messages, diagnostics }, historyCacheSize);
  const streams = new FakeStreamStore(clock, cache, registry);
  const streamService = new StreamService(
    { streams, cache, messages, publisher, fanout, clock, diagnostics },
    {
      idleTimeoutMs: options.streamIdleTimeoutMs ?? 120_000,
      maxDeltaBytes: 4096,
      maxDeltas: options.streamMaxDeltas ?? 10_000,
      maxBytes: options.streamMaxBytes ?? 65_536,
    },
  );
  const reader = new HistoryReader({ live: streamService, cache, messages, access, settled, diagnostics });
  const writer =
    options.mode === "sync"
      ? new CommitWriter(messages)
      : new QueueFirstWriter({ publisher, messages, diagnostics });
  const acceptor = new Acceptor({
    cache,
    messages,
    access,
    writer,
    fanout,
    rateLimiter,
    clock,
    settled,
    diagnostics,
    // Waiting for a try in flight advances the manual clock instead of sleeping.
    pause: async (ms) => {
      pauses.log.push(ms);
      clock.advance(ms);
      await pauses.during?.(ms);
    },
  });
  const threadService = new ThreadService({
    threads,
    messages,
    cache,
    access,
    reader,
    fanout,
    rateLimiter,
    clock,
    diagnostics,
  });
  const subscriptionService = new SubscriptionService(
    {
      registry,
      cache,
      notifier,
      verifier,
      access,
      reader,
      streams: streamService,
      rateLimiter,
      settled,
      clock,
      diagnostics,
    },
    { replayLimit: options.replayLimit ?? 100, maxConnectionsPerUser: 20, maxSubscriptionsPerConnection: 50 },
  );
  const persistService = new PersistService(
    { messages, analytics, cache, fanout, settled, clock, diagnostics, streams: streamService },
    retry,
  );
  const archiveService = new ArchiveService({ store, clock, diagnostics }, retry);
  const outboxRelayWith = (policy?: OutboxRetryPolicy) =>
    new OutboxRelay(
      { messages, analytics, cache, fanout, settled, diagnostics },
      options.outboxBatchSize ?? 100,
      policy,
    );
  const outboxRelay = outboxRelayWith();

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
    access,
    reader,
    streams,
    streamService,
    acceptor,
    threadService,
    subscriptionService,
    persistService,
    archiveService,
    outboxRelay,
    /** A relay with another retry policy for entries that fail on their own. */
    outboxRelayWith,
    settled,
    pauses,
    /** Redis is one tier: the cache, the connection registry and the rate limiter fail together. */
    redisDown(): void {
      streams.down = true;
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
    /** A thread as ThreadService.create leaves it: in PostgreSQL, and in the hot tier from its genesis. */
    cachedThread(ownerId: string, overrides: Partial<Thread> = {}): Thread {
      const thread = makeThread(ownerId, overrides);
      threads.put(thread);
      cache.put({ thread, lastSeq: 0, genesis: true });
      return thread;
    },
  };
};

// ------------------------------------------------------------------ Redis: erasure

/**
 * The hot tier's erasure over the fake cache and registry, by the rules of RedisThreadEraser: the
 * first pass marks the thread gone and removes its state, its messages' lookups (those named and
 * those in its index) and its idempotency records; the sweep removes whatever is left under the
 * thread, and the gone mark.
 */
export class FakeHotTierEraser extends TierFake<keyof HotTierEraser> implements HotTierEraser {
  constructor(
    private readonly cache: FakeMessageCache,
    private readonly registry: FakeConnectionRegistry,
  ) {
    super("redis");
  }

  async forget(
    threads: readonly ErasedThread[],
    _tombstoneTtlSeconds: number,
  ): Promise<{ subscribers: ReadonlyMap<string, readonly string[]>; keys: number }> {
    this.enter("forget", threads);
    const subscribers = new Map<string, readonly string[]>();
    let keys = 0;
    for (const t of threads) {
      this.cache.gone.add(t.threadId);
      subscribers.set(t.threadId, [...(this.registry.threadSubscribers.get(t.threadId) ?? [])]);
      keys += this.removeThread(t.threadId, t.messageIds);
    }
    return { subscribers, keys };
  }

  async sweep(threadIds: readonly string[]): Promise<number> {
    this.enter("sweep", threadIds);
    let keys = 0;
    for (const id of threadIds) {
      keys += this.removeThread(id, []);
      if (this.cache.gone.delete(id)) keys++;
    }
    return keys;
  }

  private removeThread(threadId: string, messageIds: readonly string[]): number {
    let keys = 0;
    const state = this.cache.states.get(threadId);
    const ids = new Set([...messageIds, ...[...(state?.index.values() ?? [])].map((m) => m.id)]);
    if (this.cache.states.delete(threadId)) keys++;
    if (this.registry.threadSubscribers.delete(threadId)) keys++;
    for (const id of ids) if (this.cache.byId.delete(id)) keys++;
    for (const slot of [...this.cache.idempotency.keys()]) {
      if (slot.startsWith(`${threadId}\n`) && this.cache.idempotency.delete(slot)) keys++;
    }
    return keys;
  }
}
