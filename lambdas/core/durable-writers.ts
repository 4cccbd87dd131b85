/**
 * Where an accepted message whose seq the hot tier allocated becomes durable — the one step in
 * which the two accept modes differ, chosen in the composition root:
 *  - QueueFirstWriter (queued mode): SQS SendMessage, the durability point; when SQS cannot take
 *    it, a synchronous PostgreSQL commit (degraded);
 *  - CommitWriter (sync mode, the rollback switch): a synchronous PostgreSQL commit, as the legacy
 *    system did.
 * (Without the hot tier, both modes commit synchronously and PostgreSQL allocates the seq: see
 * Acceptor.acceptWithoutCache.)
 * A failure says whether the message may have been stored anyway (a call that timed out), so the
 * caller can tell the client to retry with the same key rather than risk a duplicate.
 */
import { describeError, isTierUnavailable, threadNotFound } from "./errors.ts";
import type { Message } from "./model.ts";
import type { CommitResult, Diagnostics, MessagePublisher, MessageRepository } from "./ports.ts";
import type { Stopwatch } from "./timing.ts";

export interface Written {
  /** "queued": in SQS, persisted shortly; "committed": already in PostgreSQL. */
  readonly durability: "queued" | "committed";
  /** A fallback was used (SQS down → synchronous commit). */
  readonly degraded: boolean;
  /** PostgreSQL had the message already (another try stored it): its stored form. */
  readonly stored?: Message;
}

/** Neither durable tier took the message. */
export class WriteFailedError extends Error {
  override readonly name = "WriteFailedError";
  constructor(
    message: string,
    /** The message may have been stored all the same (its outcome is unknown). */
    readonly maybeStored: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface DurableWriter {
  readonly mode: "queued" | "sync";
  write(message: Message, ownerId: string, watch: Stopwatch): Promise<Written>;
}

/** Whether a failed call may have done its work: anything but a refusal before it was sent. */
const maybeApplied = (error: unknown): boolean => isTierUnavailable(error) && error.maybeApplied;

/** A synchronous commit's outcome, for the modes' writers and the lane without the hot tier. */
export const fromCommit = (
  committed: CommitResult | null,
  degraded: boolean,
): Written & { message: Message } => {
  if (committed === null) throw threadNotFound();
  return {
    durability: "committed",
    degraded,
    message: committed.message,
    ...(committed.inserted ? {} : { stored: committed.message }),
  };
};

/** Commits in the request; `seq: null` lets PostgreSQL allocate the seq. */
export const commitOrFail = async (
  messages: MessageRepository,
  message: Omit<Message, "seq"> & { seq: number | null },
  watch: Stopwatch,
  what: string,
): Promise<CommitResult | null> => {
  try {
    return await watch.time("db", () => messages.commit(message));
  } catch (error) {
    if (!isTierUnavailable(error)) throw error;
    throw new WriteFailedError(what, maybeApplied(error), { cause: error });
  }
};

export class QueueFirstWriter implements DurableWriter {
  readonly mode = "queued" as const;

  constructor(
    private readonly deps: {
      readonly publisher: MessagePublisher;
      readonly messages: MessageRepository;
      readonly diagnostics: Diagnostics;
    },
  ) {}

  async write(message: Message, ownerId: string, watch: Stopwatch): Promise<Written> {
    let queueError: unknown;
    try {
      await watch.time("sqs", () =>
        this.deps.publisher.publish({
          v: 1,
          message,
          owner_id: ownerId,
          accepted_at_ms: message.created_at_ms,
        }),
      );
      return { durability: "queued", degraded: false };
    } catch (error) {
      // This process is overloaded, SQS is not down: the PostgreSQL lane would cost more per
      // message and deepen the overload. Refuse the try (the client retries with its key).
      if (isTierUnavailable(error) && error.overloaded)
        throw new WriteFailedError("Server busy", error.maybeApplied, { cause: error });
      queueError = error;
      this.deps.diagnostics.warn("persist queue unavailable; committing synchronously", {
        messageId: message.id,
        error: describeError(error),
      });
    }
    try {
      return fromCommit(
        await commitOrFail(this.deps.messages, message, watch, "Queue and database both unavailable"),
        true,
      );
    } catch (error) {
      // The queue's send may have gone through even though the commit failed.
      if (error instanceof WriteFailedError && maybeApplied(queueError)) {
        throw new WriteFailedError(error.message, true, { cause: error.cause });
      }
      throw error;
    }
  }
}

export class CommitWriter implements DurableWriter {
  readonly mode = "sync" as const;

  constructor(private readonly messages: MessageRepository) {}

  async write(message: Message, _ownerId: string, watch: Stopwatch): Promise<Written> {
    return fromCommit(await commitOrFail(this.messages, message, watch, "Database unavailable"), false);
  }
}
