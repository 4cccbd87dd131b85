/**
 * Where a message is accepted (HTTP POST and WebSocket sendMessage alike).
 *
 *   1. Reserve in the hot tier, one round trip: the thread (and whether the principal may write
 *      to it), the idempotency key (new, held by another try, or answered already) and the next
 *      seq, which stays "pending" — holding the thread's watermark below it — until it resolves.
 *   2. Make it durable (DurableWriter: SQS, or PostgreSQL in the fallback and rollback modes).
 *   3. Make it visible, one round trip: the thread's index, the key's record, the next stream
 *      position and the subscribers, atomically; then push it to them.
 *   4. Answer. Nothing runs after the answer (Lambda freezes the process).
 *
 * Every accept has an idempotency key: the client's `client_message_id`, or one the server makes
 * (returned in the message), so that a try whose outcome is unknown can be retried without a
 * duplicate. The id is derived from the key: whatever happens to the hot tier, the durable tiers'
 * unique id absorbs a second copy. When the hot tier is unreachable, PostgreSQL allocates the seq
 * (docs/architecture.md says what that lane does not promise).
 */
import { bestEffort } from "./best-effort.ts";
import {
  commitOrFail,
  type DurableWriter,
  fromCommit,
  WriteFailedError,
  type Written,
} from "./durable-writers.ts";
import {
  ConflictError,
  ForbiddenError,
  isTierUnavailable,
  requestInProgress,
  ServiceUnavailableError,
  threadNotFound,
  unavailableAs,
} from "./errors.ts";
import { messageCreatedFrame } from "./events.ts";
import { emptyFanout, type Fanout, type FanoutResult } from "./fanout.ts";
import { fingerprintOf, idempotencyKey, messageIdFor, serverClientMessageId, tryToken } from "./ids.ts";
import {
  isService,
  type Message,
  type MessageRole,
  type Principal,
  type StreamPosition,
  toEpochSeconds,
} from "./model.ts";
import type {
  Clock,
  Diagnostics,
  MessageCache,
  MessageRepository,
  OwnedMessage,
  RateLimiter,
  ReleaseOutcome,
  Reservation,
  ReserveInput,
  StoreResult,
} from "./ports.ts";
import { admit } from "./rate-limit.ts";
import type { Settled } from "./sequence.ts";
import type { ThreadAccess } from "./thread-access.ts";
import { Stopwatch, type TierTiming } from "./timing.ts";
import type { PostMessageInput } from "./validation.ts";

export interface AcceptorDeps {
  readonly cache: MessageCache;
  readonly messages: MessageRepository;
  readonly access: ThreadAccess;
  readonly writer: DurableWriter;
  readonly fanout: Fanout;
  readonly rateLimiter: RateLimiter;
  readonly clock: Clock;
  readonly settled: Settled;
  readonly diagnostics: Diagnostics;
  /** Pauses between looks at a try still in flight (tests pass a clock-free one). */
  readonly pause?: (ms: number) => Promise<void>;
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
  /** True when this is the original message of an earlier try with the same key. */
  readonly replayed: boolean;
  /** "queued": in SQS, persisted shortly; "committed": already in PostgreSQL. */
  readonly durability: "queued" | "committed";
  /** A fallback was used (SQS down → synchronous commit). */
  readonly degraded: boolean;
  readonly cache: "written" | "skipped" | "failed";
  readonly delivery: FanoutResult;
  /**
   * The message's place in the thread's live stream, with the settled cursor of that moment
   * (null: the hot tier could not give one).
   */
  readonly position: (StreamPosition & { readonly settled: number }) | null;
  readonly timings: readonly TierTiming[];
}

/** How long a second try of a key waits for the first one to finish before answering 409. */
const IN_PROGRESS_PAUSES_MS = [10, 20, 40, 80, 160, 320, 640] as const;

const realPause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Attempt {
  readonly command: AcceptCommand;
  readonly role: MessageRole;
  readonly clientMessageId: string;
  readonly clientSupplied: boolean;
  readonly key: string;
  readonly id: string;
  readonly fingerprint: string;
  readonly token: string;
  readonly watch: Stopwatch;
}

type Reserved = Extract<Reservation, { kind: "reserved" }>;

export class Acceptor {
  private readonly pause: (ms: number) => Promise<void>;

  constructor(private readonly deps: AcceptorDeps) {
    this.pause = deps.pause ?? realPause;
  }

  async accept(command: AcceptCommand): Promise<AcceptResult> {
    const attempt = this.attempt(command);
    // The budget check runs alongside the reservation; its verdict is awaited first.
    const admitted = admit(this.deps.rateLimiter, command.principal, this.deps.diagnostics);
    const [admission, reserved] = await Promise.allSettled([
      admitted,
      attempt.watch.time("cache", () => this.reserve(attempt)),
    ]);
    if (admission.status === "rejected") {
      if (reserved.status === "fulfilled" && reserved.value?.kind === "reserved") {
        await this.release(attempt, reserved.value, giveUp(reserved.value));
      }
      throw admission.reason;
    }
    if (reserved.status === "rejected") throw reserved.reason;
    const reservation = reserved.value;
    if (reservation === null) return this.acceptWithoutCache(attempt);
    if (reservation.kind === "replay") {
      return await this.replay(
        attempt,
        reservation.message,
        this.deps.writer.mode === "sync" ? "committed" : "queued",
      );
    }
    return this.acceptReserved(attempt, reservation);
  }

  private attempt(command: AcceptCommand): Attempt {
    const { principal, threadId, input } = command;
    const role = roleFor(principal, input.role);
    if (input.streaming && !isService(principal)) {
      throw new ForbiddenError("role_not_allowed", "only a service principal may stream a reply");
    }
    const clientMessageId = input.clientMessageId ?? serverClientMessageId();
    return {
      command,
      role,
      clientMessageId,
      clientSupplied: input.clientMessageId !== undefined,
      key: idempotencyKey(principal.userId, clientMessageId),
      id: messageIdFor(threadId, principal.userId, clientMessageId),
      fingerprint: fingerprintOf({
        role,
        content: input.content,
        metadata: input.metadata,
        ...(input.streaming ? { state: "streaming" as const } : {}),
      }),
      token: tryToken(),
      watch: new Stopwatch(),
    };
  }

  /**
   * The hot tier's reservation: "reserved" or "replay", or null when the hot tier cannot be
   * reached (the accept then goes on without it). A timed-out call is repeated once with the same
   * token, so a reservation it made is found again rather than leaked.
   */
  private async reserve(
    attempt: Attempt,
  ): Promise<Reserved | Extract<Reservation, { kind: "replay" }> | null> {
    const { principal, threadId } = attempt.command;
    const input: ReserveInput = {
      threadId,
      idempotencyKey: attempt.key,
      clientSupplied: attempt.clientSupplied,
      fingerprint: attempt.fingerprint,
      token: attempt.token,
      ownerId: isService(principal) ? null : principal.userId,
      nowMs: this.deps.clock.now(),
    };
    // Redis down (its circuit is open): PostgreSQL takes over the seq. Redis slow (a call timed
    // out, the circuit still closed): the call is repeated once with the same token (it finds its
    // own reservation if the first one went through), then the try is refused with 503 and the key
    // to retry with — an overloaded Redis must not push accepts into the costlier PostgreSQL lane.
    const call = async (): Promise<Reservation | null> => {
      for (let tries = 0; ; tries++) {
        try {
          return await this.deps.cache.reserve(input);
        } catch (error) {
          if (!isTierUnavailable(error)) throw error;
          // Only when no call of this try may have reached Redis: otherwise it may hold a
          // reservation, and must not also commit in PostgreSQL's lane.
          if (!error.maybeApplied && tries === 0) {
            this.deps.diagnostics.warn("cache unavailable on accept; PostgreSQL allocates the seq", {
              threadId,
              error: error.message,
            });
            return null;
          }
          if (tries >= 1) {
            throw new ServiceUnavailableError(
              `Cache busy; retry with client_message_id ${attempt.clientMessageId}`,
              {
                cause: error,
                clientMessageId: attempt.clientMessageId,
              },
            );
          }
        }
      }
    };
    let installs = 0;
    let waits = 0;
    for (;;) {
      const reservation = await call();
      if (reservation === null) return null;
      switch (reservation.kind) {
        case "unknown_thread":
          // Not in the hot tier (new to it, or lost with a flush, also while waiting below).
          if (installs++ >= 2) return null;
          if ((await this.deps.access.install(threadId)) === null) throw threadNotFound();
          continue;
        case "in_progress": {
          const ms = IN_PROGRESS_PAUSES_MS[waits++];
          if (ms === undefined) throw requestInProgress();
          await this.pause(ms);
          continue;
        }
        case "mismatch":
          throw keyReused();
        case "not_found":
          throw threadNotFound();
        default:
          return reservation;
      }
    }
  }

  private async acceptReserved(attempt: Attempt, reservation: Reserved): Promise<AcceptResult> {
    const { thread } = reservation;
    const earlier = await this.earlierTry(attempt, reservation);
    if (earlier !== null && fingerprintOf(earlier.message) !== attempt.fingerprint) {
      await this.release(attempt, reservation, giveUp(reservation));
      throw keyReused();
    }
    if (earlier !== null && !reservation.takeover) {
      // Old, and below the restored state's floor: reads find it in PostgreSQL.
      await this.release(attempt, reservation, { kind: "replayed", message: earlier.message });
      return await this.replay(attempt, earlier.message, "committed");
    }
    let message: Message = { ...this.draft(attempt, reservation.createdAtMs), seq: reservation.seq };
    let written: Written;
    if (earlier !== null) {
      // Stored by the earlier try, maybe never made visible: this try does that (and answers as a replay).
      written = { durability: "committed", degraded: false, stored: earlier.message };
    } else {
      try {
        written = await this.deps.writer.write(message, thread.owner_id, attempt.watch);
      } catch (error) {
        if (error instanceof WriteFailedError) {
          await this.release(
            attempt,
            reservation,
            error.maybeStored ? { kind: "unknown" } : giveUp(reservation),
          );
          throw this.unavailable(attempt, error);
        }
        await this.release(attempt, reservation, giveUp(reservation));
        throw error;
      }
    }
    if (written.stored !== undefined) message = written.stored;
    const settled = this.deps.settled();
    const stored = await this.store(attempt, message, thread.owner_id, written.durability === "queued");
    if (stored?.kind === "lost" && written.durability === "queued") {
      // The hot state this reservation came from is gone, or made anew above its seq: reads of
      // the thread look for it in PostgreSQL now, so it must be there before the answer.
      const committed = await bestEffort(
        this.deps.diagnostics,
        "could not commit a message its hot state lost",
        { messageId: message.id },
        () => attempt.watch.time("db", () => this.deps.messages.commit(message)),
        null,
      );
      if (committed !== null) {
        message = committed.message;
        written = { durability: "committed", degraded: written.degraded };
        // Not "replayed": a complete record would tell the consumers it was made visible (and a
        // read may have warmed the range without it). Left to take over at once: a retry finds
        // the message in PostgreSQL, and the consumer's confirmation makes it visible.
        await this.release(attempt, reservation, { kind: "unknown" });
      }
    }
    // PostgreSQL kept the message under a seq of its own: the reserved one goes unused.
    if (message.seq !== reservation.seq) await this.release(attempt, reservation, { kind: "abandoned" });
    if (stored?.kind === "replay") return await this.replay(attempt, stored.message, written.durability);
    const visible = stored?.kind === "visible" ? stored : null;
    const position = visible === null ? null : { ...visible.position, settled };
    const delivery =
      visible === null || position === null
        ? emptyFanout()
        : await this.notify(attempt, message, position, visible.subscribers);
    return {
      message,
      replayed: earlier !== null,
      durability: written.durability,
      degraded: written.degraded,
      cache: visible !== null ? "written" : "failed",
      delivery,
      position,
      timings: [...attempt.watch.timings, attempt.watch.total()],
    };
  }

  /**
   * The hot tier is unreachable: PostgreSQL decides replays, allocates the seq and commits the
   * message in the request, so that a retry of the same key finds it there. Then one attempt to
   * make it visible (the hot tier may be back); otherwise the outbox relay does it later.
   */
  private async acceptWithoutCache(attempt: Attempt): Promise<AcceptResult> {
    const { principal, threadId } = attempt.command;
    const thread = await this.deps.access.accessible(principal, threadId);
    const retryWith = { clientMessageId: attempt.clientMessageId };
    if (attempt.clientSupplied) {
      const earlier = await attempt.watch
        .time("db", () => this.deps.messages.findById(attempt.id))
        .catch(unavailableAs("Cache and database both unavailable", retryWith));
      if (earlier !== null) {
        if (fingerprintOf(earlier.message) !== attempt.fingerprint) throw keyReused();
        return await this.replay(attempt, earlier.message, "committed");
      }
    }
    let written: Written & { message: Message };
    try {
      const draft = { ...this.draft(attempt, this.deps.clock.now()), seq: null };
      const committed = await commitOrFail(
        this.deps.messages,
        draft,
        attempt.watch,
        "Cache and database both unavailable",
      );
      written = fromCommit(committed, this.deps.writer.mode === "queued");
    } catch (error) {
      if (error instanceof WriteFailedError) throw this.unavailable(attempt, error);
      throw error;
    }
    if (written.stored !== undefined) {
      if (fingerprintOf(written.stored) !== attempt.fingerprint) throw keyReused();
      return await this.replay(attempt, written.stored, "committed");
    }
    const message = written.message;
    const settled = this.deps.settled();
    const stored = await this.store(attempt, message, thread.owner_id, false, false);
    if (stored?.kind === "replay") return await this.replay(attempt, stored.message, "committed");
    const visible = stored?.kind === "visible" ? stored : null;
    const position = visible === null ? null : { ...visible.position, settled };
    return {
      message,
      replayed: false,
      durability: written.durability,
      degraded: written.degraded,
      cache: visible !== null ? "written" : "skipped",
      delivery:
        visible === null || position === null
          ? emptyFanout()
          : await this.notify(attempt, message, position, visible.subscribers),
      position,
      timings: [...attempt.watch.timings, attempt.watch.total()],
    };
  }

  /** Makes the message visible; a timed-out call is repeated once (the script is idempotent). */
  private async store(
    attempt: Attempt,
    message: Message,
    ownerId: string,
    queued: boolean,
    repeat = true,
  ): Promise<StoreResult | null> {
    const ctx = {
      ownerId,
      idempotencyKey: attempt.key,
      fingerprint: attempt.fingerprint,
      token: attempt.token,
      queued,
    };
    for (let tries = 0; ; tries++) {
      try {
        return await attempt.watch.time("cache_write", () => this.deps.cache.store(message, ctx));
      } catch (error) {
        if (tries >= 1 || !repeat || !isTierUnavailable(error) || !error.maybeApplied) {
          // Durable already: the persist consumer makes it visible once PostgreSQL has it.
          this.deps.diagnostics.warn("could not cache accepted message", {
            messageId: message.id,
            error: error instanceof Error ? error.message : String(error),
          });
          return null;
        }
      }
    }
  }

  private notify(
    attempt: Attempt,
    message: Message,
    position: StreamPosition & { settled: number },
    subscribers: readonly string[],
  ): Promise<FanoutResult> {
    const recipients = subscribers.filter((id) => id !== attempt.command.originConnectionId);
    if (recipients.length === 0) return Promise.resolve(emptyFanout());
    const frame = messageCreatedFrame(message, position);
    return attempt.watch.time("ws", () => this.deps.fanout.deliver(message.thread_id, recipients, frame));
  }

  private release(
    attempt: Attempt,
    reservation: Pick<Reserved, "seq" | "createdAtMs">,
    outcome: Parameters<MessageCache["release"]>[0]["outcome"],
  ): Promise<void> {
    const { seq, createdAtMs } = reservation;
    return bestEffort(
      this.deps.diagnostics,
      "could not release reservation",
      { threadId: attempt.command.threadId, seq, outcome: outcome.kind },
      () =>
        this.deps.cache.release({
          threadId: attempt.command.threadId,
          seq,
          idempotencyKey: attempt.key,
          token: attempt.token,
          fingerprint: attempt.fingerprint,
          createdAtMs,
          outcome,
        }),
      undefined,
    );
  }

  private draft(attempt: Attempt, createdAtMs: number): Omit<Message, "seq"> {
    const { principal, threadId, input } = attempt.command;
    return {
      id: attempt.id,
      thread_id: threadId,
      role: attempt.role,
      user_id: principal.userId,
      content: input.content,
      metadata: input.metadata,
      client_message_id: attempt.clientMessageId,
      created_at: toEpochSeconds(createdAtMs),
      created_at_ms: createdAtMs,
      ...(input.streaming ? { state: "streaming" as const } : {}),
    };
  }

  /**
   * The original message of the key (the reservation or PostgreSQL authorised the thread); when the
   * hot tier no longer holds it, it is read by its id.
   */
  /**
   * An earlier try's message, where one may exist: the hot tier lost this thread's keys within the
   * idempotency window (verify: the key may be old), or this try took the reservation over from one
   * that ran out of time (it may have committed in PostgreSQL's lane, with a seq of its own).
   * A takeover that cannot ask is refused with 503 (keeping the reservation for the retry); a
   * verify that cannot ask goes on as new, as accepting matters more while PostgreSQL is away.
   */
  private async earlierTry(attempt: Attempt, reservation: Reserved): Promise<OwnedMessage | null> {
    if (reservation.takeover) {
      try {
        return await attempt.watch.time("db", () => this.deps.messages.findById(attempt.id));
      } catch (error) {
        if (!isTierUnavailable(error)) throw error;
        await this.release(attempt, reservation, { kind: "unknown" });
        throw new ServiceUnavailableError(
          `Cannot tell whether an earlier try stored this message; retry with client_message_id ${attempt.clientMessageId}`,
          { cause: error, clientMessageId: attempt.clientMessageId },
        );
      }
    }
    if (!reservation.verify) return null;
    return bestEffort(
      this.deps.diagnostics,
      "could not check PostgreSQL for an earlier try",
      { messageId: attempt.id },
      () => this.deps.messages.findById(attempt.id),
      null,
    );
  }

  private async replay(
    attempt: Attempt,
    original: Message | null,
    durability: AcceptResult["durability"],
  ): Promise<AcceptResult> {
    const message = original ?? (await this.originalById(attempt));
    return {
      message,
      replayed: true,
      durability,
      degraded: false,
      cache: "skipped",
      delivery: emptyFanout(),
      position: null,
      timings: [...attempt.watch.timings, attempt.watch.total()],
    };
  }

  private async originalById(attempt: Attempt): Promise<Message> {
    const found =
      (await bestEffort(
        this.deps.diagnostics,
        "cache unavailable for replay",
        { messageId: attempt.id },
        () => this.deps.cache.getMessage(attempt.id),
        null,
      )) ??
      (await attempt.watch
        .time("db", () => this.deps.messages.findById(attempt.id))
        .catch(unavailableAs("Message store unavailable", { clientMessageId: attempt.clientMessageId })));
    // Answered already, but on its way to PostgreSQL and no longer cached: ask again shortly.
    if (found === null) throw requestInProgress();
    return found.message;
  }

  private unavailable(attempt: Attempt, error: WriteFailedError): ServiceUnavailableError {
    const retry = `${error.message}; retry with client_message_id ${attempt.clientMessageId}`;
    return new ServiceUnavailableError(retry, { cause: error, clientMessageId: attempt.clientMessageId });
  }
}

const roleFor = (principal: Principal, requested: MessageRole | undefined): MessageRole => {
  if (isService(principal)) {
    // An agent speaks as the assistant or the system, never in the user's name.
    if (requested === "user") {
      throw new ForbiddenError(
        "role_not_allowed",
        "a service principal may post assistant or system messages only",
      );
    }
    return requested ?? "assistant";
  }
  if (requested !== undefined && requested !== "user") {
    throw new ForbiddenError("role_not_allowed", `only a service principal may post ${requested} messages`);
  }
  return "user";
};

const keyReused = (): ConflictError =>
  new ConflictError(
    "idempotency_key_reused",
    "This client_message_id was used for a message with different content",
  );

/**
 * How a try lets go of a reservation it will not use: freed, unless it took the reservation over
 * from a try whose outcome is unknown (that try's copy may be on its way: a retry must find it).
 */
const giveUp = (reservation: Reserved): ReleaseOutcome =>
  reservation.takeover ? { kind: "unknown" } : { kind: "abandoned" };
