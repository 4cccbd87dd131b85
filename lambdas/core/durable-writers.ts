/**
 * Where an accepted message becomes durable — the one step in which the two accept modes differ,
 * chosen in the composition root:
 *  - QueueFirstWriter (queued mode): SQS SendMessage, the durability point; when SQS cannot take
 *    it, a synchronous PostgreSQL commit (degraded);
 *  - CommitWriter (sync mode, the rollback switch): a synchronous PostgreSQL commit, as the legacy
 *    system did.
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
  /** Makes a message whose seq the hot tier allocated durable. */
  write(message: Message, ownerId: string, watch: Stopwatch): Promise<Written>;
  /** The hot tier is away: PostgreSQL allocates the seq; returns the message as written. */
  writeAllocating(
    draft: Omit<Message, "seq">,
    ownerId: string,
    watch: Stopwatch,
  ): Promise<Written & { message: Message }>;
}

/** Whether a failed call may have done its work: anything but a refusal before it was sent. */
const maybeApplied = (error: unknown): boolean => isTierUnavailable(error) && error.maybeApplied;

const fromCommit = (committed: CommitResult | null, degraded: boolean): Written & { message: Message } => {
  if (committed === null) throw threadNotFound();
  return {
    durability: "committed",
    degraded,
    message: committed.message,
    ...(committed.inserted ? {} : { stored: committed.message }),
  };
};

export class QueueFirstWriter implements DurableWriter {
  readonly mode = "queued" as const;

  constructor(
    private readonly deps: {
      readonly publisher: MessagePublisher;
      readonly messages: MessageRepository;
      readonly threads: { allocateSeq(threadId: string): Promise<{ seq: number } | null> };
      readonly diagnostics: Diagnostics;
    },
  ) {}

  async write(message: Message, ownerId: string, watch: Stopwatch): Promise<Written> {
    let queueError: unknown;
    try {
      await watch.time("sqs", () =>
        this.deps.publisher.publish({ v: 1, message, owner_id: ownerId, accepted_at_ms: message.created_at_ms }),
      );
      return { durability: "queued", degraded: false };
    } catch (error) {
      queueError = error;
      this.deps.diagnostics.warn("persist queue unavailable; committing synchronously", {
        messageId: message.id,
        error: describeError(error),
      });
    }
    let committed: CommitResult | null;
    try {
      committed = await watch.time("db", () => this.deps.messages.commit(message));
    } catch (error) {
      if (!isTierUnavailable(error)) throw error;
      throw new WriteFailedError("Queue and database both unavailable", maybeApplied(queueError) || maybeApplied(error), {
        cause: error,
      });
    }
    return fromCommit(committed, true);
  }

  async writeAllocating(
    draft: Omit<Message, "seq">,
    ownerId: string,
    watch: Stopwatch,
  ): Promise<Written & { message: Message }> {
    let allocated: { seq: number } | null;
    try {
      allocated = await watch.time("db", () => this.deps.threads.allocateSeq(draft.thread_id));
    } catch (error) {
      if (!isTierUnavailable(error)) throw error;
      throw new WriteFailedError("Cache and database both unavailable", false, { cause: error });
    }
    if (allocated === null) throw threadNotFound();
    const message: Message = { ...draft, seq: allocated.seq };
    return { message, ...(await this.write(message, ownerId, watch)) };
  }
}

export class CommitWriter implements DurableWriter {
  readonly mode = "sync" as const;

  constructor(private readonly messages: MessageRepository) {}

  async write(message: Message, _ownerId: string, watch: Stopwatch): Promise<Written> {
    return this.commit(message, watch);
  }

  writeAllocating(
    draft: Omit<Message, "seq">,
    _ownerId: string,
    watch: Stopwatch,
  ): Promise<Written & { message: Message }> {
    return this.commit({ ...draft, seq: null }, watch);
  }

  private async commit(
    message: Omit<Message, "seq"> & { seq: number | null },
    watch: Stopwatch,
  ): Promise<Written & { message: Message }> {
    let committed: CommitResult | null;
    try {
      committed = await watch.time("db", () => this.messages.commit(message));
    } catch (error) {
      if (!isTierUnavailable(error)) throw error;
      throw new WriteFailedError("Database unavailable", maybeApplied(error), { cause: error });
    }
    return fromCommit(committed, false);
  }
}
