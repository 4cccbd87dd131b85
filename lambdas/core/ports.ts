/**
 * The small interfaces the core depends on. Adapters (`lambdas/adapters/<tech>/`) implement them
 * over a connected client they are given; unit tests implement them in memory.
 */
import type { HistoryPage, HistoryQuery, Message, Principal, Thread } from "./model.ts";

/** Hot-tier answer to "reserve a slot for a new message in this thread" (one round trip). */
export type Reservation =
  /** The thread is not in the cache; the caller loads it and reserves again with `install`. */
  | { readonly kind: "unknown_thread" }
  /** The idempotency key was already used: this is the original message. */
  | { readonly kind: "replay"; readonly thread: Thread; readonly message: Message }
  | {
      readonly kind: "reserved";
      readonly thread: Thread;
      readonly seq: number;
      /** Connections subscribed to the thread, read in the same round trip. */
      readonly subscribers: readonly string[];
    };

export interface OwnedMessage {
  readonly message: Message;
  readonly ownerId: string;
}

/** Redis: recent history, thread records, idempotency keys and per-thread sequence numbers. */
export interface MessageCache {
  reserve(input: { threadId: string; idempotencyKey?: string; install?: Thread }): Promise<Reservation>;
  /** Caches an accepted message: thread index, lookup by id, idempotency key. */
  store(message: Message, ctx: { ownerId: string; idempotencyKey?: string }): Promise<void>;
  /** A page answered from the cache, or null when the cache cannot prove the page complete. */
  history(threadId: string, query: HistoryQuery): Promise<HistoryPage | null>;
  getMessage(id: string): Promise<OwnedMessage | null>;
  getThread(id: string): Promise<Thread | null>;
  putThread(thread: Thread): Promise<void>;
  /** Loads the newest messages of a thread from the durable tier; `complete` = the whole thread. */
  warm(threadId: string, messages: readonly Message[], complete: boolean): Promise<void>;
  /** Fills holes in thread indexes that exist already (messages persisted after a cache outage). */
  refresh(entries: readonly OwnedMessage[]): Promise<void>;
  ping(): Promise<void>;
}

export interface Connection {
  readonly connectionId: string;
  readonly principal: Principal;
  readonly connectedAt: number;
}

/** Redis: which WebSocket connections exist and which threads they follow. */
export interface ConnectionRegistry {
  register(connection: Connection): Promise<void>;
  get(connectionId: string): Promise<Connection | null>;
  subscribe(connectionId: string, threadId: string): Promise<void>;
  unsubscribe(connectionId: string, threadId: string): Promise<void>;
  subscribers(threadId: string): Promise<string[]>;
  /** Forgets a connection and all its subscriptions ($disconnect, or 410 Gone). */
  remove(connectionId: string): Promise<void>;
}

export type DeliveryResult = "sent" | "gone";

/** API Gateway Management API: pushes one frame to one WebSocket connection. */
export interface ConnectionNotifier {
  send(connectionId: string, frame: string): Promise<DeliveryResult>;
}

export interface CommitResult {
  readonly message: Message;
  /** False when a message with this id was already stored (a retry). */
  readonly inserted: boolean;
}

export interface ThreadCursor {
  readonly created_at_ms: number;
  readonly id: string;
}

export interface ThreadPage {
  readonly threads: Thread[];
  readonly next_cursor: string | null;
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
  history(threadId: string, query: HistoryQuery): Promise<HistoryPage>;
  count(threadId: string): Promise<number>;
  /** Messages committed synchronously that still have to reach the analytics queue. */
  pendingOutbox(limit: number): Promise<Message[]>;
  /** Hands stored messages to the outbox relay (the analytics queue could not take them). */
  addToOutbox(ids: readonly string[]): Promise<void>;
  clearOutbox(ids: readonly string[]): Promise<void>;
  ping(): Promise<void>;
}

export interface ThreadRepository {
  create(thread: Thread): Promise<Thread>;
  get(id: string): Promise<Thread | null>;
  /** Newest first; `after` is the last thread of the previous page. */
  listByOwner(ownerId: string, page: { limit: number; after?: ThreadCursor }): Promise<Thread[]>;
  /** Allocates the next seq in PostgreSQL (used while the cache is down). Null: no such thread. */
  allocateSeq(threadId: string): Promise<{ thread: Thread; seq: number } | null>;
}

/** What travels on the persist queue. */
export interface PersistEnvelope {
  readonly v: 1;
  readonly message: Message;
  readonly owner_id: string;
  readonly accepted_at_ms: number;
}

/** SQS persist queue: the durability point of the accept path. */
export interface MessagePublisher {
  publish(envelope: PersistEnvelope): Promise<void>;
  ping(): Promise<void>;
}

/** SQS analytics queue: persisted messages on their way to ClickHouse. */
export interface AnalyticsPublisher {
  publish(messages: readonly Message[]): Promise<void>;
}

/** ClickHouse: the analytics archive, deduplicated by message id. */
export interface AnalyticsStore {
  insert(messages: readonly Message[]): Promise<void>;
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
