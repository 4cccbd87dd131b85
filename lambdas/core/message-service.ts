/**
 * Where a message is accepted and read back.
 *
 * Accept (queued mode, the default):
 *   1. one Redis round trip: thread record, idempotency key, next seq, subscribers;
 *   2. SQS SendMessage: the durability point (fallback: synchronous PostgreSQL commit);
 *   3. in parallel: cache the message, and push it to the thread's WebSocket subscribers;
 *   4. answer. Nothing runs after the answer (Lambda freezes the process).
 * Accept (sync mode, the rollback switch): one PostgreSQL statement allocates the seq and commits
 * the message before the answer, as the legacy system did; caching and fan-out follow it.
 */
import { describeError, ForbiddenError, messageNotFound, threadNotFound, unavailableAs } from "./errors.ts";
import { messageCreatedFrame } from "./events.ts";
import type { Fanout, FanoutResult } from "./fanout.ts";
import { emptyFanout } from "./fanout.ts";
import { messageIdFor } from "./ids.ts";
import {
  canAccessThread,
  type HistoryPage,
  type HistoryQuery,
  isAdmin,
  isService,
  type Message,
  type MessageRole,
  type Principal,
  type Thread,
  toEpochSeconds,
} from "./model.ts";
import type {
  Clock,
  CommitResult,
  ConnectionRegistry,
  Diagnostics,
  MessageCache,
  MessagePublisher,
  MessageRepository,
  RateLimiter,
  Reservation,
  ThreadRepository,
} from "./ports.ts";
import { admit } from "./rate-limit.ts";
import { Stopwatch, type TierTiming } from "./timing.ts";
import type { PostMessageInput } from "./validation.ts";

export type AcceptMode = "queued" | "sync";

type CachedReservation = Exclude<Reservation, { kind: "unknown_thread" }>;

export interface MessageServiceOptions {
  readonly mode: AcceptMode;
  /** How many of a thread's newest messages the cache keeps (and recovery loads). */
  readonly historyCacheSize: number;
  /** Retry-After for a 503 when no durable tier could take a message. */
  readonly retryAfterSeconds: number;
}

export interface MessageServiceDeps {
  readonly cache: MessageCache;
  readonly messages: MessageRepository;
  readonly threads: ThreadRepository;
  readonly publisher: MessagePublisher;
  readonly registry: ConnectionRegistry;
  readonly fanout: Fanout;
  readonly rateLimiter: RateLimiter;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

export interface AcceptCommand {
  readonly principal: Principal;
  readonly threadId: string;
  readonly input: PostMessageInput;
  /** The WebSocket connection that sent the message: it gets an ack instead of the fan-out copy. */
  readonly originConnectionId?: string;
}

export interface AcceptResult {
  readonly message: Message;
  /** True when this is the original message of an earlier request with the same client id. */
  readonly replayed: boolean;
  /** "queued": in SQS, persisted shortly; "committed": already in PostgreSQL. */
  readonly durability: "queued" | "committed";
  /** A fallback was used (SQS down → synchronous commit). */
  readonly degraded: boolean;
  readonly cache: "written" | "skipped" | "failed";
  readonly delivery: FanoutResult;
  readonly timings: readonly TierTiming[];
}

export interface ReadResult<T> {
  readonly value: T;
  readonly source: "cache" | "database";
}

const retryHint = "; retry with the same client_message_id";

export class MessageService {
  constructor(
    private readonly deps: MessageServiceDeps,
    private readonly options: MessageServiceOptions,
  ) {}

  async accept(command: AcceptCommand): Promise<AcceptResult> {
    const role = this.roleFor(command.principal, command.input.role);
    // The budget check runs alongside the accept's first round trip; its verdict is awaited first.
    const admitted = admit(this.deps.rateLimiter, command.principal, this.deps.diagnostics);
    const accepted =
      this.options.mode === "sync"
        ? this.acceptSynchronously(command, role, admitted)
        : this.acceptQueued(command, role, admitted);
    return accepted;
  }

  private roleFor(principal: Principal, requested: MessageRole | undefined): MessageRole {
    if (isService(principal)) return requested ?? "assistant";
    if (requested !== undefined && requested !== "user") {
      throw new ForbiddenError("role_not_allowed", `only a service principal may post ${requested} messages`);
    }
    return "user";
  }

  private draft(command: AcceptCommand, role: MessageRole, seq: number): Message {
    const now = this.deps.clock.now();
    const { principal, threadId, input } = command;
    return {
      id: messageIdFor(threadId, principal.userId, input.clientMessageId),
      thread_id: threadId,
      seq,
      role,
      user_id: principal.userId,
      content: input.content,
      metadata: input.metadata,
      client_message_id: input.clientMessageId ?? null,
      created_at: toEpochSeconds(now),
      created_at_ms: now,
    };
  }

  private idempotencyKey(command: AcceptCommand): string | undefined {
    const id = command.input.clientMessageId;
    // Client ids cannot contain "|", so the key is unambiguous whatever the user id holds.
    return id === undefined ? undefined : `${command.principal.userId}|${id}`;
  }

  private async acceptQueued(
    command: AcceptCommand,
    role: MessageRole,
    admitted: Promise<void>,
  ): Promise<AcceptResult> {
    const watch = new Stopwatch();
    const { principal, threadId } = command;
    const idempotencyKey = this.idempotencyKey(command);

    const [admission, reserved] = await Promise.allSettled([
      admitted,
      watch.time("cache", () => this.reserveInCache(threadId, idempotencyKey)),
    ]);
    if (admission.status === "rejected") throw admission.reason;
    if (reserved.status === "rejected") throw reserved.reason;
    const reservation = reserved.value;

    let thread: Thread;
    let seq: number;
    let subscribers: readonly string[] = [];
    if (reservation !== null) {
      if (!canAccessThread(principal, reservation.thread)) throw threadNotFound();
      if (reservation.kind === "replay") return this.replay(reservation.message, "queued", watch);
      ({ thread, seq, subscribers } = reservation);
    } else {
      const replayed = await this.findReplayInDatabase(command, watch);
      if (replayed !== null) return this.replay(replayed, "committed", watch);
      const allocated = await watch
        .time("db", () => this.deps.threads.allocateSeq(threadId))
        .catch(
          unavailableAs(`Cache and database both unavailable${retryHint}`, this.options.retryAfterSeconds),
        );
      if (allocated === null || !canAccessThread(principal, allocated.thread)) throw threadNotFound();
      ({ thread, seq } = allocated);
    }

    let message = this.draft(command, role, seq);
    let durability: AcceptResult["durability"] = "queued";
    let degraded = false;
    try {
      await watch.time("sqs", () =>
        this.deps.publisher.publish({
          v: 1,
          message,
          owner_id: thread.owner_id,
          accepted_at_ms: message.created_at_ms,
        }),
      );
    } catch (error) {
      this.deps.diagnostics.warn("persist queue unavailable; committing synchronously", {
        messageId: message.id,
        error: describeError(error),
      });
      const committed = await this.commitOrFail(message, watch);
      if (!committed.inserted) return this.replay(committed.message, "committed", watch);
      message = committed.message;
      durability = "committed";
      degraded = true;
    }

    return this.cacheAndNotify(command, message, {
      ownerId: thread.owner_id,
      idempotencyKey,
      subscribers,
      cacheAvailable: reservation !== null,
      durability,
      degraded,
      watch,
    });
  }

  private async acceptSynchronously(
    command: AcceptCommand,
    role: MessageRole,
    admitted: Promise<void>,
  ): Promise<AcceptResult> {
    const watch = new Stopwatch();
    const { principal, threadId } = command;
    await admitted;
    const thread = await this.resolveThread(threadId);
    if (thread === null || !canAccessThread(principal, thread)) throw threadNotFound();

    // The subscriber list does not depend on the commit: read it while the commit runs.
    const subscribers = this.deps.registry.subscribers(threadId).catch((error: unknown) => {
      this.deps.diagnostics.warn("connection registry unavailable", {
        threadId,
        error: describeError(error),
      });
      return [] as string[];
    });
    const draft = this.draft(command, role, 0);
    const committed = await watch
      .time("db", () => this.deps.messages.commit({ ...draft, seq: null }))
      .catch(unavailableAs(`Database unavailable${retryHint}`, this.options.retryAfterSeconds));
    if (committed === null) throw threadNotFound();
    if (!committed.inserted) return this.replay(committed.message, "committed", watch);

    return this.cacheAndNotify(command, committed.message, {
      ownerId: thread.owner_id,
      idempotencyKey: this.idempotencyKey(command),
      subscribers: await subscribers,
      cacheAvailable: true,
      durability: "committed",
      degraded: false,
      watch,
    });
  }

  /**
   * The cache's reservation, or null when the cache cannot serve it (the accept then falls back to
   * PostgreSQL). Failures to load the thread from PostgreSQL are not cache failures: they propagate.
   */
  private async reserveInCache(
    threadId: string,
    idempotencyKey: string | undefined,
  ): Promise<CachedReservation | null> {
    const attempt = (install?: Thread): Promise<Reservation | null> =>
      this.deps.cache
        .reserve({
          threadId,
          ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
          ...(install !== undefined ? { install } : {}),
        })
        .catch((error: unknown) => {
          this.deps.diagnostics.warn("cache unavailable on accept; using PostgreSQL for seq", {
            threadId,
            error: describeError(error),
          });
          return null;
        });
    const first = await attempt();
    if (first === null || first.kind !== "unknown_thread") return first;
    // RESERVE installs the thread record itself: no separate cache write here.
    const thread = await this.fetchThread(threadId);
    if (thread === null) throw threadNotFound();
    const second = await attempt(thread);
    return second === null || second.kind === "unknown_thread" ? null : second;
  }

  /** With the cache down, a retry is recognised by its derived id in PostgreSQL. */
  private async findReplayInDatabase(command: AcceptCommand, watch: Stopwatch): Promise<Message | null> {
    if (command.input.clientMessageId === undefined) return null;
    const id = messageIdFor(command.threadId, command.principal.userId, command.input.clientMessageId);
    const found = await watch
      .time("db", () => this.deps.messages.findById(id))
      .catch(
        unavailableAs(`Cache and database both unavailable${retryHint}`, this.options.retryAfterSeconds),
      );
    return found?.message ?? null;
  }

  private async commitOrFail(message: Message, watch: Stopwatch): Promise<CommitResult> {
    const committed = await watch
      .time("db", () => this.deps.messages.commit(message))
      .catch(
        unavailableAs(`Queue and database both unavailable${retryHint}`, this.options.retryAfterSeconds),
      );
    if (committed === null) throw threadNotFound();
    return committed;
  }

  private async cacheAndNotify(
    command: AcceptCommand,
    message: Message,
    ctx: {
      ownerId: string;
      idempotencyKey: string | undefined;
      subscribers: readonly string[];
      cacheAvailable: boolean;
      durability: AcceptResult["durability"];
      degraded: boolean;
      watch: Stopwatch;
    },
  ): Promise<AcceptResult> {
    const { watch } = ctx;
    const storeInCache = async (): Promise<AcceptResult["cache"]> => {
      if (!ctx.cacheAvailable) return "skipped";
      try {
        const key = ctx.idempotencyKey !== undefined ? { idempotencyKey: ctx.idempotencyKey } : {};
        await watch.time("cache_write", () =>
          this.deps.cache.store(message, { ownerId: ctx.ownerId, ...key }),
        );
        return "written";
      } catch (error) {
        this.deps.diagnostics.warn("could not cache accepted message", {
          messageId: message.id,
          error: describeError(error),
        });
        return "failed";
      }
    };
    const recipients = ctx.subscribers.filter((id) => id !== command.originConnectionId);
    const [cache, delivery] = await Promise.all([
      storeInCache(),
      recipients.length === 0
        ? Promise.resolve(emptyFanout())
        : watch.time("ws", () =>
            this.deps.fanout.deliver(message.thread_id, recipients, messageCreatedFrame(message)),
          ),
    ]);
    return {
      message,
      replayed: false,
      durability: ctx.durability,
      degraded: ctx.degraded,
      cache,
      delivery,
      timings: [...watch.timings, watch.total()],
    };
  }

  private replay(message: Message, durability: AcceptResult["durability"], watch: Stopwatch): AcceptResult {
    return {
      message,
      replayed: true,
      durability,
      degraded: false,
      cache: "skipped",
      delivery: emptyFanout(),
      timings: [...watch.timings, watch.total()],
    };
  }

  /** Thread record: cache first, then PostgreSQL (re-caching what it finds). */
  async resolveThread(threadId: string): Promise<Thread | null> {
    try {
      const cached = await this.deps.cache.getThread(threadId);
      if (cached !== null) return cached;
    } catch (error) {
      this.deps.diagnostics.warn("cache unavailable for thread lookup", {
        threadId,
        error: describeError(error),
      });
    }
    return this.loadThread(threadId);
  }

  private fetchThread(threadId: string): Promise<Thread | null> {
    return this.deps.threads
      .get(threadId)
      .catch(unavailableAs("Thread store unavailable", this.options.retryAfterSeconds));
  }

  /** The thread from PostgreSQL, then cached for the next lookup. */
  private async loadThread(threadId: string): Promise<Thread | null> {
    const thread = await this.fetchThread(threadId);
    if (thread !== null) {
      await this.deps.cache.putThread(thread).catch((error: unknown) => {
        this.deps.diagnostics.warn("could not cache thread", { threadId, error: describeError(error) });
      });
    }
    return thread;
  }

  async accessibleThread(principal: Principal, threadId: string): Promise<Thread> {
    const thread = await this.resolveThread(threadId);
    if (thread === null || !canAccessThread(principal, thread)) throw threadNotFound();
    return thread;
  }

  async history(
    principal: Principal,
    threadId: string,
    query: HistoryQuery,
  ): Promise<ReadResult<HistoryPage>> {
    await this.accessibleThread(principal, threadId);
    return this.readHistory(threadId, query);
  }

  /** History without an access check: callers have authorised the thread already. */
  async readHistory(threadId: string, query: HistoryQuery): Promise<ReadResult<HistoryPage>> {
    try {
      const cached = await this.deps.cache.history(threadId, query);
      if (cached !== null) return { value: cached, source: "cache" };
    } catch (error) {
      this.deps.diagnostics.warn("cache unavailable for history", { threadId, error: describeError(error) });
    }
    const page = await this.deps.messages
      .history(threadId, query)
      .catch(unavailableAs("History unavailable", this.options.retryAfterSeconds));
    if (query.direction === "backward" && query.before === undefined) {
      await this.warmFrom(threadId, page);
    }
    return { value: page, source: "database" };
  }

  /** The newest page came from PostgreSQL: keep it hot for the next reader. */
  private async warmFrom(threadId: string, page: HistoryPage): Promise<void> {
    try {
      await this.deps.cache.warm(threadId, page.messages, page.next_cursor === null);
    } catch (error) {
      this.deps.diagnostics.warn("could not warm cache", { threadId, error: describeError(error) });
    }
  }

  async getMessage(principal: Principal, messageId: string): Promise<ReadResult<Message>> {
    let found: { message: Message; ownerId: string } | null = null;
    let source: ReadResult<Message>["source"] = "cache";
    try {
      found = await this.deps.cache.getMessage(messageId);
    } catch (error) {
      this.deps.diagnostics.warn("cache unavailable for message lookup", {
        messageId,
        error: describeError(error),
      });
    }
    if (found === null) {
      source = "database";
      found = await this.deps.messages
        .findById(messageId)
        .catch(unavailableAs("Message store unavailable", this.options.retryAfterSeconds));
    }
    if (found === null || !canAccessThread(principal, { owner_id: found.ownerId })) throw messageNotFound();
    return { value: found.message, source };
  }

  /** Admin: reload a thread's newest messages from PostgreSQL into the cache. */
  async recoverCache(principal: Principal, threadId: string): Promise<{ backfilled: number }> {
    if (!isAdmin(principal)) throw new ForbiddenError("admin_required", "This route needs the admin role");
    const [thread, page] = await Promise.all([
      this.deps.threads.get(threadId),
      this.deps.messages.history(threadId, { direction: "backward", limit: this.options.historyCacheSize }),
    ]).catch(unavailableAs("Database unavailable", this.options.retryAfterSeconds));
    if (thread === null) throw threadNotFound();
    await this.deps.cache
      .putThread(thread)
      .then(() => this.deps.cache.warm(threadId, page.messages, page.next_cursor === null))
      .catch(unavailableAs("Cache unavailable", this.options.retryAfterSeconds));
    return { backfilled: page.messages.length };
  }
}
