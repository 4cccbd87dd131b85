/**
 * The small interfaces the core depends on. Adapters (`lambdas/adapters/<tech>/`) implement them
 * over a connected client they are given; unit tests implement them in memory.
 */
import type {
  HistoryQuery,
  JsonObject,
  Message,
  MessageState,
  Principal,
  StreamPosition,
  Thread,
} from "./model.ts";

/** What the accept path asks the hot tier before a message becomes durable (one round trip). */
export interface ReserveInput {
  readonly threadId: string;
  /** `<userId>|<clientMessageId>`: one message per key (the client's id, or one the server made). */
  readonly idempotencyKey: string;
  /** True when the client chose the key (a retry is possible); false when the server made it up. */
  readonly clientSupplied: boolean;
  /** Tells tries of one key apart: a retry with different content is refused. */
  readonly fingerprint: string;
  /** Identifies this try; a try that repeats its own call (a timeout) gets its reservation back. */
  readonly token: string;
  /** Only threads of this owner are reserved in (null: any thread — a service principal). */
  readonly ownerId: string | null;
  /** The message's `created_at_ms` if this try allocates it. */
  readonly nowMs: number;
}

/** Hot-tier answer to "reserve a seq for this message in this thread". */
export type Reservation =
  /** The thread is not in the hot tier: the caller installs it and reserves again. */
  | { readonly kind: "unknown_thread" }
  /** The thread exists but is not the principal's: answered like a missing one. */
  | { readonly kind: "not_found" }
  /** The key was used for a message with other content. */
  | { readonly kind: "mismatch" }
  /** Another try of the key holds the reservation and is still within its lease. */
  | { readonly kind: "in_progress" }
  /** The key's message is visible already: this is the original (null: read it by its id). */
  | { readonly kind: "replay"; readonly thread: Thread; readonly message: Message | null }
  | {
      readonly kind: "reserved";
      readonly thread: Thread;
      readonly seq: number;
      readonly createdAtMs: number;
      /** Taken over from an earlier try whose lease ran out or whose outcome was unknown. */
      readonly takeover: boolean;
      /**
       * The hot tier lost this thread's state within the idempotency window: the key may have been
       * used before, so the durable tier must be asked before the message is made.
       */
      readonly verify: boolean;
    };

/** How a reservation ends when its message does not become visible through `store`. */
export type ReleaseOutcome =
  /** Not stored anywhere: the seq and the key are free again. */
  | { readonly kind: "abandoned" }
  /** Perhaps stored (a send timed out): the next try of the key takes the reservation over. */
  | { readonly kind: "unknown" }
  /** The durable tier holds the key's original already: remember it for the next try. */
  | { readonly kind: "replayed"; readonly message: Message };

export type StoreResult =
  | {
      readonly kind: "visible";
      /** The message's position in the thread's stream. */
      readonly position: StreamPosition;
      /** Connections following the thread, read atomically with the position. */
      readonly subscribers: readonly string[];
    }
  /** Another try of the key made the message visible first: this one is a replay (null: read it by id). */
  | { readonly kind: "replay"; readonly message: Message | null }
  /** The hot tier lost the thread's state since the reservation. */
  | { readonly kind: "lost" };

/** Rows of a history page the hot tier can vouch for: those at or above its floor. */
export interface CachedHistory {
  /** In walk order (backward: newest first), at most the requested count, all `>= floor`. */
  readonly rows: readonly Message[];
  /** The hot tier holds every visible message with `seq >= floor`; below it, PostgreSQL does. */
  readonly floor: number;
  /** The stream position the rows were read at. */
  readonly position: StreamPosition;
}

export interface PositionedMessage {
  readonly message: Message;
  readonly pos: number;
}

/** What a new subscriber starts from. */
export interface Following {
  readonly position: StreamPosition;
  /**
   * Every message made visible after the subscriber's own position, in order; null when the
   * position is of another epoch, or older than the hot tier still logs (catch up by seq).
   */
  readonly replay: readonly PositionedMessage[] | null;
}

/** Messages made visible late (after `store` failed, or accepted while the hot tier was away). */
export interface LateVisibility {
  readonly threadId: string;
  readonly epoch: string;
  readonly subscribers: readonly string[];
  readonly messages: readonly PositionedMessage[];
}

export interface OwnedMessage {
  readonly message: Message;
  readonly ownerId: string;
}

/** A thread as the durable tier knows it, to (re)install it in the hot tier. */
export interface ThreadInstall {
  readonly thread: Thread;
  /** The highest seq the durable tier has seen for the thread (0: none). */
  readonly lastSeq: number;
  /** A brand-new thread: nothing of it can exist anywhere yet. */
  readonly genesis: boolean;
}

/**
 * Redis, the hot tier: per thread, its record, the seq counter, reservations not resolved yet,
 * the newest messages (with a completeness floor), idempotency records, the stream position and
 * the subscriber set — all under one cluster slot. Its rules are specified once, by the contract
 * suite in test/contracts/message-cache.contract.ts, which runs against the adapter and the fake.
 */
export interface MessageCache {
  /** Creates the thread's hot state if it has none (keeping what is there), or updates its record. */
  install(input: ThreadInstall): Promise<void>;
  getThread(id: string): Promise<Thread | null>;
  /**
   * A thread record changed (renamed, archived): the hot state forgets its copy (the next use
   * installs it again from PostgreSQL; the stream position and messages stay); answers the
   * thread's subscribers, to tell them.
   */
  updateThread(thread: Thread): Promise<readonly string[]>;
  reserve(input: ReserveInput): Promise<Reservation>;
  /**
   * Makes an accepted (durable) message visible: thread index, lookup by id, the key's record; the
   * reservation resolves and the stream position advances. `queued`: PostgreSQL may not have it
   * yet, so the hot tier keeps it until the persist consumer confirms. Every key gets a complete
   * record here, also one the server made up: the client learns it from the answer and may send
   * it again.
   */
  store(
    message: Message,
    ctx: {
      ownerId: string;
      idempotencyKey: string;
      fingerprint: string;
      token: string;
      queued: boolean;
    },
  ): Promise<StoreResult>;
  release(input: {
    threadId: string;
    seq: number;
    idempotencyKey: string;
    token: string;
    fingerprint: string;
    /** The reservation's created_at_ms (a record made for an unknown outcome keeps it). */
    createdAtMs: number;
    outcome: ReleaseOutcome;
  }): Promise<void>;
  /** Rows at or above the floor for a history query, with the floor and the position; null: no state. */
  history(threadId: string, query: HistoryQuery): Promise<CachedHistory | null>;
  /**
   * Adds a subscriber and reads the stream position, atomically, with what it missed after
   * `since` when the hot tier can still replay it (at most `limit` messages); null: no state.
   */
  follow(
    threadId: string,
    connectionId: string,
    since: StreamPosition | null,
    limit: number,
  ): Promise<Following | null>;
  /** Adds messages read from PostgreSQL below the floor; `complete`: they reach the first message. */
  warm(threadId: string, messages: readonly Message[], complete: boolean): Promise<void>;
  /**
   * The persist consumer (and the outbox relay) confirm messages as PostgreSQL stored them.
   * Messages that were never made visible (or were shown with another seq) become visible now,
   * and are returned with whom to tell.
   */
  refresh(messages: readonly Message[]): Promise<LateVisibility[]>;
  getMessage(id: string): Promise<OwnedMessage | null>;
  ping(): Promise<void>;
}

/** A streamed reply as the hot tier holds it (docs/streaming.md). */
export interface StreamSnapshot {
  readonly messageId: string;
  readonly threadId: string;
  readonly state: MessageState;
  /** The last delta index the content includes (-1: none yet). */
  readonly deltaIndex: number;
  /** The deltas joined, from `baseIndex` on. */
  readonly content: string;
  /** The first index the content holds: above 0 when the hot tier lost the earlier deltas. */
  readonly baseIndex: number;
  readonly deltaCount: number;
  /** The content's size as a queue record carries it (JSON-escaped; see queue-body.ts). */
  readonly bytes: number;
  readonly openedAtMs: number;
  readonly firstDeltaAtMs: number | null;
  readonly lastAppendAtMs: number;
  /** The message as it was opened. */
  readonly opened: Message;
  /** Once it ended: the final message. */
  readonly final: Message | null;
}

export interface StreamLimits {
  readonly maxDeltas: number;
  readonly maxBytes: number;
  readonly idleTimeoutMs: number;
}

export type AppendResult =
  /** Appended: push it to these connections (read atomically with the append). */
  | { readonly kind: "appended"; readonly subscribers: readonly string[] }
  /**
   * This index was appended before: nothing appended again. `resend`: it is the last one, with
   * this text — push it to these connections again (the try that applied it may not have).
   */
  | { readonly kind: "duplicate"; readonly resend?: readonly string[] }
  | { readonly kind: "out_of_order"; readonly expected: number }
  | { readonly kind: "not_streaming"; readonly state: MessageState }
  /** No append for longer than the idle timeout: the caller closes the stream. */
  | { readonly kind: "idle" }
  | { readonly kind: "too_large" }
  /** The hot tier has no state for this stream (lost, or never opened there). */
  | { readonly kind: "missing" };

export type FinishResult =
  | { readonly kind: "finished"; readonly subscribers: readonly string[] }
  /** It ended before (this state, this final message), with the thread's subscribers. */
  | {
      readonly kind: "ended";
      readonly state: MessageState;
      readonly final: Message | null;
      readonly subscribers: readonly string[];
    }
  /** A delta arrived since the snapshot the final was built from: build it again. */
  | { readonly kind: "changed" }
  | { readonly kind: "missing" };

/**
 * Redis: the live state of streamed replies — their deltas joined, the last index, counters and
 * timings — under the thread's hash tag. The rules are specified by the contract suite in
 * test/contracts/stream-store.contract.ts, run against the adapter and the fake.
 */
export interface StreamStore {
  /** Starts holding a stream (`baseIndex`: the first index it will take); keeps one there already. */
  open(opened: Message, ownerId: string | null, baseIndex: number): Promise<void>;
  append(
    threadId: string,
    messageId: string,
    delta: { index: number; text: string },
    limits: StreamLimits,
  ): Promise<AppendResult>;
  /** null: the hot tier holds no state for it. */
  snapshot(threadId: string, messageId: string): Promise<StreamSnapshot | null>;
  /** The thread's streams still streaming. */
  openStreams(threadId: string): Promise<StreamSnapshot[]>;
  /**
   * Final messages of replies that ended while the thread's stream position was at or above `pos`
   * (oldest ending first, at most `limit`): what a subscriber resuming from `pos` may have missed.
   */
  endedSince(threadId: string, pos: number, limit: number): Promise<Message[]>;
  /**
   * Ends the stream with `final`, if no delta arrived after `expectedIndex`; the thread's index
   * and the lookup by id then show the final message.
   */
  finish(final: Message, ownerId: string, expectedIndex: number): Promise<FinishResult>;
}

export interface Connection {
  readonly connectionId: string;
  readonly principal: Principal;
  readonly connectedAt: number;
}

/** Redis: which WebSocket connections exist and which threads they follow. */
export interface ConnectionRegistry {
  /** Records the connection; answers how many connections its principal has open now. */
  register(connection: Connection): Promise<number>;
  get(connectionId: string): Promise<Connection | null>;
  /**
   * Records that the connection follows the thread (the thread's side: `MessageCache.follow`);
   * answers how many threads it follows now.
   */
  subscribe(connectionId: string, threadId: string): Promise<number>;
  /** Both sides: the connection's thread list and the thread's subscriber set. */
  unsubscribe(connectionId: string, threadId: string): Promise<void>;
  /** Forgets a connection and all its subscriptions ($disconnect, or 410 Gone). */
  remove(connectionId: string): Promise<void>;
}

export type DeliveryResult = "sent" | "gone";

/** API Gateway Management API: pushes frames to WebSocket connections, and closes them. */
export interface ConnectionNotifier {
  send(connectionId: string, frame: string): Promise<DeliveryResult>;
  /** Closes the connection (DELETE @connections); a connection gone already is fine. */
  disconnect(connectionId: string): Promise<void>;
}

export interface CommitResult {
  readonly message: Message;
  /** False when a message with this id was already stored (a retry). */
  readonly inserted: boolean;
  /**
   * The message's thread was erased (it has a tombstone): nothing was stored, and nothing of it
   * may go further (the analytics queue, the hot tier). `message` is the input.
   */
  readonly erased?: true;
}

/** A history page as PostgreSQL has it (without a stream position: see HistoryReader). */
export interface StoredPage {
  readonly messages: Message[];
  readonly next_cursor: number | null;
}

export interface ThreadCursor {
  readonly created_at_ms: number;
  readonly id: string;
}

export interface ThreadPage {
  readonly threads: Thread[];
  readonly next_cursor: string | null;
}

export interface OutboxRetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelaySeconds: number;
  readonly maxDelaySeconds: number;
}

/** PostgreSQL: the durable system of record for messages. */
export interface MessageRepository {
  /**
   * One idempotent insert for a whole batch (ON CONFLICT (id) DO NOTHING). Returns the stored
   * (canonical) row for every input id, whether inserted now or earlier.
   */
  persistBatch(messages: readonly OwnedMessage[]): Promise<CommitResult[]>;
  /**
   * Synchronous commit in the request (SQS-down fallback and the rollback mode): the message and
   * its analytics outbox entry in one statement. With `seq: null` PostgreSQL allocates the seq.
   * Returns null when the thread does not exist.
   */
  commit(message: Omit<Message, "seq"> & { seq: number | null }): Promise<CommitResult | null>;
  findById(id: string): Promise<OwnedMessage | null>;
  /** A page in `seq` order; `below`: only messages with a lower seq (the hot tier holds the rest). */
  history(threadId: string, query: HistoryQuery, below?: number): Promise<StoredPage>;
  count(threadId: string): Promise<number>;
  /**
   * Outbox entries due now, oldest first: messages that still have to reach the analytics queue
   * or be confirmed to the hot tier. Deferred and parked entries are not due.
   */
  pendingOutbox(limit: number): Promise<Message[]>;
  /** Hands stored messages to the outbox relay (the analytics queue could not take them). */
  addToOutbox(ids: readonly string[]): Promise<void>;
  clearOutbox(ids: readonly string[]): Promise<void>;
  /**
   * An entry that failed on its own: counted, and due again after a delay that doubles with each
   * attempt; after `maxAttempts` it is parked (kept, never due) until an operator releases it.
   */
  deferOutbox(id: string, reason: string, policy: OutboxRetryPolicy): Promise<void>;
  /** How many outbox entries are parked. */
  parkedOutbox(): Promise<number>;
  ping(): Promise<void>;
}

export type ArchivedFilter = "exclude" | "only" | "include";

/** What a PATCH changes: a title (null clears it), the metadata (replaced whole), archived or not. */
export interface ThreadChange {
  readonly title?: string | null;
  readonly metadata?: JsonObject;
  readonly archived?: boolean;
}

export interface ThreadRepository {
  create(thread: Thread): Promise<Thread>;
  get(id: string): Promise<Thread | null>;
  /** The thread with the highest seq PostgreSQL has seen for it, to install it in the hot tier. */
  getForInstall(id: string): Promise<ThreadInstall | null>;
  /** Newest first; `after` is the last thread of the previous page. */
  /** Newest first; `archived` (default "exclude") says which archived threads to show. */
  listByOwner(
    ownerId: string,
    page: { limit: number; after?: ThreadCursor; archived?: ArchivedFilter },
  ): Promise<Thread[]>;
  /** Applies the given changes (absent fields stay); null: no such thread. */
  update(id: string, change: ThreadChange, nowMs: number): Promise<Thread | null>;
  /**
   * Threads whose `metadata.agent` is this string (the agent a thread asks to answer it), of any
   * owner; newest first, `after` as in `listByOwner`.
   */
  listByAgent(agent: string, page: { limit: number; after?: ThreadCursor }): Promise<Thread[]>;
}

/**
 * What travels on the persist queue: a message to store (a streamed reply twice: opened, and in
 * its final state), or a look at whether a stream went idle (sent with a delay).
 */
export type PersistEnvelope = MessageEnvelope | StreamCheckEnvelope;

export interface MessageEnvelope {
  readonly v: 1;
  readonly message: Message;
  readonly owner_id: string;
  readonly accepted_at_ms: number;
}

export interface StreamCheckEnvelope {
  readonly v: 1;
  readonly kind: "stream_check";
  readonly thread_id: string;
  readonly message_id: string;
}

export const isStreamCheck = (e: PersistEnvelope): e is StreamCheckEnvelope => "kind" in e;

/** SQS persist queue: the durability point of the accept path. */
export interface MessagePublisher {
  /** `delaySeconds` (0-900): SQS hands the record out only after this long. */
  publish(envelope: PersistEnvelope, options?: { delaySeconds?: number }): Promise<void>;
  ping(): Promise<void>;
}

/** SQS analytics queue: persisted messages on their way to ClickHouse. */
export interface AnalyticsPublisher {
  publish(messages: readonly Message[]): Promise<void>;
}

/** ClickHouse: the analytics archive, deduplicated by message id. */
export interface AnalyticsStore {
  insert(messages: readonly Message[]): Promise<void>;
  /** Which of these threads were erased (ClickHouse's own tombstones): their rows are dropped. */
  erasedAmong(threadIds: readonly string[]): Promise<ReadonlySet<string>>;
  ping(): Promise<void>;
}

/** Per-principal request budget (Redis token bucket). */
export interface RateLimiter {
  /** Takes one token from `key`'s bucket. */
  take(key: string): Promise<{ readonly allowed: boolean; readonly retryAfterSeconds: number }>;
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

export interface Clock {
  now(): number;
}

/** Where the core reports degradations it absorbs (a tier skipped, a delivery dropped). */
export interface Diagnostics {
  warn(message: string, attributes?: Record<string, unknown>): void;
}

// ---------------------------------------------------------------- feedback, usage and analytics

export const FEEDBACK_RATINGS = ["up", "down"] as const;
export type FeedbackRating = (typeof FEEDBACK_RATINGS)[number];

/** One user's rating of an assistant reply, as PostgreSQL holds it (one per user and reply). */
export interface Feedback {
  readonly message_id: string;
  readonly user_id: string;
  readonly rating: FeedbackRating;
  readonly reason: string | null;
  readonly comment: string | null;
  /** When it was last changed (epoch ms); also its version, strictly growing per reply and user. */
  readonly updated_at_ms: number;
}

/**
 * A change of feedback as the analytics queue carries it to ClickHouse's `feedback` table (a
 * removal is a change with `deleted`; the newest `updated_at_ms` of a reply and user wins there).
 * The comment stays in PostgreSQL.
 */
export interface FeedbackEvent {
  readonly message_id: string;
  readonly thread_id: string;
  readonly user_id: string;
  readonly rating: FeedbackRating;
  readonly reason: string | null;
  /** The reply's `usage.model` ("" when it reported none). */
  readonly model: string;
  readonly deleted: boolean;
  /** The reply's `created_at` (epoch s): the same for every change, so all land in one partition. */
  readonly message_created_at: number;
  readonly updated_at_ms: number;
}

/** Whose feedback on which reply, and when. */
export interface FeedbackTarget {
  /** The reply (as the hot tier or PostgreSQL showed it). */
  readonly message: Pick<Message, "id" | "thread_id" | "created_at">;
  /** The reply's `usage.model` ("" when it reported none). */
  readonly model: string;
  readonly userId: string;
  readonly nowMs: number;
  /** Until when the change is left to this request to send (after that, any sender may). */
  readonly dueAtMs: number;
}

export interface FeedbackWrite extends FeedbackTarget {
  readonly rating: FeedbackRating;
  readonly reason: string | null;
  readonly comment: string | null;
}

/**
 * PostgreSQL: feedback on replies, and each (reply, user)'s latest change until it has been sent to
 * the analytics queue. A write and its pending change are one statement, so a change the request
 * could not send is sent later by another (`claimUnsent`).
 */
export interface FeedbackRepository {
  /** Creates or replaces the user's feedback; null when PostgreSQL does not hold the reply (yet). */
  put(write: FeedbackWrite): Promise<{ readonly feedback: Feedback; readonly event: FeedbackEvent } | null>;
  /** Removes it; the change to send, or null when there was none to remove. */
  remove(target: FeedbackTarget): Promise<FeedbackEvent | null>;
  /** Changes not sent whose due time has passed, oldest first, each claimed until `claimUntilMs`. */
  claimUnsent(nowMs: number, limit: number, claimUntilMs: number): Promise<FeedbackEvent[]>;
  /** These changes reached the queue (a newer change of the same reply and user stays unsent). */
  markSent(events: readonly FeedbackEvent[]): Promise<void>;
}

/** SQS analytics queue: feedback changes on their way to ClickHouse. */
export interface FeedbackPublisher {
  publish(events: readonly FeedbackEvent[]): Promise<void>;
}

/** ClickHouse's `feedback` table (ReplacingMergeTree on updated_at_ms). */
export interface FeedbackArchive {
  insertFeedback(events: readonly FeedbackEvent[]): Promise<void>;
}

export interface RoleCounts {
  readonly total: number;
  readonly user: number;
  readonly assistant: number;
  readonly system: number;
}

/** Assistant replies by state (a reply posted whole is `complete`). */
export interface StateCounts {
  readonly streaming: number;
  readonly complete: number;
  readonly cancelled: number;
  readonly error: number;
}

export interface TokenTotals {
  readonly input: number;
  readonly output: number;
}

export interface FeedbackCounts {
  readonly up: number;
  readonly down: number;
}

/** A thread's totals, as PostgreSQL holds them. */
export interface ThreadUsage {
  readonly messages: RoleCounts;
  readonly assistant_states: StateCounts;
  readonly tokens: TokenTotals;
  readonly feedback: FeedbackCounts;
}

/** PostgreSQL: a thread's totals. */
export interface UsageRepository {
  threadUsage(threadId: string): Promise<ThreadUsage>;
}

/** Milliseconds; null when no message of the group has a value. */
export interface Percentiles {
  readonly p50: number | null;
  readonly p95: number | null;
}

export interface AnalyticsFigures extends ThreadUsage {
  readonly first_delta_ms: Percentiles;
  readonly duration_ms: Percentiles;
}

export type AnalyticsGrouping = "day" | "model";

/** Messages created from `from` 00:00 UTC to the end of `to` (days as YYYY-MM-DD). */
export interface AnalyticsQuery {
  readonly from: string;
  readonly to: string;
  readonly groupBy: AnalyticsGrouping;
}

export interface AnalyticsGroup extends AnalyticsFigures {
  /** The day (YYYY-MM-DD), or the model (null: none reported, e.g. user messages). */
  readonly key: string | null;
}

export interface AnalyticsSummary {
  /** Groups that have data, in key order. */
  readonly groups: readonly AnalyticsGroup[];
  readonly totals: AnalyticsFigures;
}

/** ClickHouse: the analytics read (each message and each reply's feedback counted once). */
export interface AnalyticsReader {
  summarize(query: AnalyticsQuery): Promise<AnalyticsSummary>;
}

// ---------------------------------------------------------------- erasure

export type ErasureKind = "thread" | "user" | "retention";

/**
 * Where an erasure stands (core/erasure-service.ts): `postgres` (threads still to delete) →
 * `redis` (the hot tier still to clear) → `clickhouse` (tombstones and deletes to issue) → `settle`
 * (waiting out writers in flight, then a second pass on Redis and ClickHouse) → `verify`
 * (ClickHouse's deletes still running) → `done`.
 */
export type ErasureStage = "postgres" | "redis" | "clickhouse" | "settle" | "verify" | "done";

/** An erasure as recorded: who asked, when, for what, how far — never what was erased. */
export interface Erasure {
  readonly id: string;
  readonly kind: ErasureKind;
  /** The thread id, the user id, or the retention cutoff (epoch ms). */
  readonly subject: string;
  readonly requested_by: string;
  readonly requested_at_ms: number;
  readonly threads: number;
  readonly messages: number;
  readonly feedback: number;
  readonly redis_keys: number;
  /** Rows ClickHouse still showed at the last look (null: not looked yet). */
  readonly clickhouse_remaining: number | null;
  readonly stage: ErasureStage;
  readonly postgres_done_at_ms: number | null;
  readonly redis_done_at_ms: number | null;
  readonly clickhouse_done_at_ms: number | null;
  readonly completed_at_ms: number | null;
  readonly due_at_ms: number;
  readonly attempts: number;
  readonly last_error: string | null;
}

export type NewErasure = Pick<
  Erasure,
  "id" | "kind" | "subject" | "requested_by" | "requested_at_ms" | "stage"
> & {
  readonly postgres_done_at_ms: number | null;
};

/** What an erasure's step changes (absent fields stay); the lease is released. */
export type ErasureProgress = Partial<
  Pick<
    Erasure,
    | "stage"
    | "redis_keys"
    | "clickhouse_remaining"
    | "postgres_done_at_ms"
    | "redis_done_at_ms"
    | "clickhouse_done_at_ms"
    | "completed_at_ms"
    | "due_at_ms"
    | "attempts"
    | "last_error"
  >
>;

/** A deleted thread, and what the hot tier may hold of its messages (read before they went). */
export interface ErasedThread {
  readonly threadId: string;
  readonly messageIds: readonly string[];
  /** The idempotency keys of its messages (`<userId>|<clientMessageId>`). */
  readonly idempotencyKeys: readonly string[];
}

/** PostgreSQL: erasure records, thread tombstones, and the deletes themselves. */
/** One step of an erasure in PostgreSQL: which threads, under which erasure record. */
export interface EraseThreadsInput {
  readonly erasureId: string;
  readonly create?: NewErasure;
  readonly threadIds: readonly string[];
  readonly ownerId?: string;
  /** Only threads whose newest message (or creation) is older than this (retention). */
  readonly idleBefore?: number;
  readonly nowMs: number;
}

export interface ErasureRepository {
  /**
   * One transaction: tombstones the threads under the erasure and deletes them with their
   * messages, feedback and outbox entries; adds the counts to the erasure. With `create`, the
   * erasure record is written in the same transaction (and not at all when no thread was there).
   * Threads not there (or, with `ownerId`, not this owner's) are skipped.
   */
  eraseThreads(input: EraseThreadsInput): Promise<ErasedThread[]>;
  /** Threads a user owns (any order), at most `limit`. */
  ownedThreads(userId: string, limit: number): Promise<string[]>;
  /** Threads whose newest message (or, with none, whose creation) is older than `cutoffMs`. */
  expiredThreads(cutoffMs: number, limit: number): Promise<string[]>;
  /** The threads an erasure tombstoned, in id order after `after`. */
  erasedThreads(erasureId: string, after: string | null, limit: number): Promise<string[]>;
  create(erasure: NewErasure): Promise<Erasure>;
  get(id: string): Promise<Erasure | null>;
  /** Erasures of this kind not completed yet. */
  pending(kind: ErasureKind): Promise<number>;
  /**
   * Takes the erasure to work on it, until `leaseUntilMs`; null when it is complete, unknown, or
   * another worker holds it.
   */
  claim(id: string, nowMs: number, leaseUntilMs: number): Promise<Erasure | null>;
  /** Erasures not completed whose due time passed before `dueBeforeMs` and that no worker holds. */
  stalled(dueBeforeMs: number, nowMs: number, limit: number): Promise<string[]>;
  /** Records a step's progress and releases the lease. */
  update(id: string, progress: ErasureProgress): Promise<void>;
}

/** Hands an erasure to the worker: a record on the erasure queue, delivered after `delaySeconds` (0-900). */
export interface ErasureQueue {
  schedule(erasureId: string, delaySeconds: number): Promise<void>;
}

/** Redis: forgets deleted threads. */
export interface HotTierEraser {
  /**
   * First pass, as the thread is deleted: marks each thread gone (the hot tier will not install it
   * again for `tombstoneTtlSeconds`) and removes its state, its messages' lookups and idempotency
   * records. Answers the connections that followed each thread, and how many keys went.
   */
  forget(
    threads: readonly ErasedThread[],
    tombstoneTtlSeconds: number,
  ): Promise<{ readonly subscribers: ReadonlyMap<string, readonly string[]>; readonly keys: number }>;
  /**
   * A sweep of every key under these threads' hash tags (and the lookups of messages found in
   * them), the gone marks included: what writers in flight wrote after the first pass. Answers
   * how many keys went.
   */
  sweep(threadIds: readonly string[]): Promise<number>;
}

/** ClickHouse: erased threads' rows, and the tombstones the analytics consumer checks. */
export interface ArchiveEraser {
  /** Records the threads as erased: the analytics consumer drops their rows from then on. */
  tombstone(threadIds: readonly string[], nowMs: number): Promise<void>;
  /** Deletes the threads' messages and feedback rows (a mutation, or a lightweight delete). */
  erase(threadIds: readonly string[]): Promise<void>;
  /** Rows of these threads a query still sees (FINAL). */
  remaining(threadIds: readonly string[]): Promise<number>;
}
