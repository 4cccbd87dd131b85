/**
 * Assistant replies that stream (docs/streaming.md). A reply is opened like any message (the
 * accept path: a seq, SQS, PostgreSQL, `message.created`) with `state: "streaming"`; its deltas
 * live only in the hot tier and on the wire (`message.delta`, never a PostgreSQL write); it ends
 * once — complete, error, cancelled, or closed by the idle timeout — and that final message goes
 * through SQS to PostgreSQL (replacing the opened row) and on to ClickHouse.
 *
 * Who decides: the hot tier's FINISH script. Whatever ends a stream (the agent, the owner's stop,
 * the idle timeout) goes through it, so exactly one ending wins and every later one is told which.
 * When the hot tier lost a stream's state, it is restored from the opened message (durable) before
 * anything else happens to it; deltas appended before the loss are gone from the live copy, and the
 * final message keeps the agent's `content` if it sends one (it should), else the deltas since.
 */
import { bestEffort } from "./best-effort.ts";
import {
  ConflictError,
  ForbiddenError,
  messageNotFound,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  unavailableAs,
} from "./errors.ts";
import { endingFrame, eventFrame } from "./events.ts";
import type { Fanout } from "./fanout.ts";
import { lookupMessage } from "./message-lookup.ts";
import {
  canAccessThread,
  isService,
  type JsonObject,
  type Message,
  type MessageFailure,
  type MessageState,
  type MessageUsage,
  type Principal,
  streamFields,
} from "./model.ts";
import type {
  Clock,
  Diagnostics,
  MessageCache,
  MessagePublisher,
  MessageRepository,
  OwnedMessage,
  StreamLimits,
  StreamSnapshot,
  StreamStore,
} from "./ports.ts";

export interface StreamOptions extends StreamLimits {
  /** UTF-8 bytes of one delta's text. */
  readonly maxDeltaBytes: number;
}

export interface StreamServiceDeps {
  readonly streams: StreamStore;
  readonly cache: MessageCache;
  readonly messages: MessageRepository;
  readonly publisher: MessagePublisher;
  /** Absent where the WebSocket API is unknown (subscribers then read history). */
  readonly fanout?: Fanout;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

/** How a stream ends, as the request (or the idle timeout) asks. */
export interface Ending {
  readonly state: Exclude<MessageState, "streaming">;
  readonly finishReason: string;
  readonly content?: string;
  readonly usage?: MessageUsage;
  readonly error?: MessageFailure;
  readonly metadata?: JsonObject;
}

export interface AppendOutcome {
  readonly messageId: string;
  readonly threadId: string;
  readonly index: number;
  /** The index was appended before: nothing was appended again. */
  readonly duplicate: boolean;
}

/** Most endings sent to one resuming subscriber (more: it reads history). */
const ENDED_REPLAYED = 100;
/** SQS's longest delay: a later check is scheduled in steps. */
const MAX_CHECK_DELAY_SECONDS = 900;
/** Message id → thread id (never changes): spares a lookup per delta in a warm instance. */
const THREAD_OF_CACHE_SIZE = 10_000;

export const notStreaming = (state: MessageState | undefined): ConflictError =>
  new ConflictError("message_not_streaming", `The message is ${state ?? "complete"}, not streaming`);

export class StreamService {
  private readonly threadOf = new Map<string, string>();

  constructor(
    private readonly deps: StreamServiceDeps,
    private readonly options: StreamOptions,
  ) {}

  /**
   * After the accept path made an opened reply visible: the hot tier starts holding its deltas,
   * and the idle check is scheduled. Both best effort: an append restores a stream the hot tier
   * lacks, and an append after the timeout closes it (docs/streaming.md, "Windows we know of").
   */
  async opened(message: Message, ownerId: string | null): Promise<void> {
    if (message.state !== "streaming") return;
    this.remember(message);
    await Promise.all([
      bestEffort(
        this.deps.diagnostics,
        "could not open stream state",
        { messageId: message.id },
        () => this.deps.streams.open(message, ownerId, 0),
        undefined,
      ),
      bestEffort(
        this.deps.diagnostics,
        "could not schedule the idle check",
        { messageId: message.id },
        () => this.scheduleCheck(message.thread_id, message.id, this.options.idleTimeoutMs),
        undefined,
      ),
    ]);
  }

  async append(
    principal: Principal,
    messageId: string,
    delta: { index: number; text: string },
    originConnectionId?: string,
  ): Promise<AppendOutcome> {
    if (!isService(principal)) {
      throw new ForbiddenError("role_not_allowed", "only a service principal may stream a reply");
    }
    if (Buffer.byteLength(delta.text, "utf8") > this.options.maxDeltaBytes) {
      throw new PayloadTooLargeError(
        "delta_too_large",
        `a delta may hold ${this.options.maxDeltaBytes} bytes`,
      );
    }
    const threadId = this.threadOf.get(messageId) ?? (await this.locate(messageId)).message.thread_id;
    for (let restored = false; ; restored = true) {
      const result = await this.deps.streams
        .append(threadId, messageId, delta, this.options)
        .catch(unavailableAs("Stream state unavailable; retry this delta"));
      switch (result.kind) {
        case "appended":
          await this.push(threadId, messageId, delta, result.subscribers, originConnectionId);
          return { messageId, threadId, index: delta.index, duplicate: false };
        case "duplicate":
          if (result.resend !== undefined) {
            await this.push(threadId, messageId, delta, result.resend, originConnectionId);
          }
          return { messageId, threadId, index: delta.index, duplicate: true };
        case "out_of_order":
          throw new ConflictError(
            "delta_out_of_order",
            `delta ${delta.index} is out of order: the next index is ${result.expected}`,
          );
        case "not_streaming":
          throw notStreaming(result.state);
        case "too_large":
          throw new PayloadTooLargeError(
            "stream_too_large",
            `a reply may hold ${this.options.maxDeltas} deltas and ${this.options.maxBytes} bytes`,
          );
        case "idle": {
          const ended = await this.closeIdle(threadId, messageId);
          throw notStreaming(ended?.state ?? "error");
        }
        case "missing": {
          if (restored) throw new ServiceUnavailableError("Stream state unavailable; retry this delta");
          // The hot tier lost it (or never got it): restored from the opened message, taking this
          // delta as the first it holds (docs/streaming.md: what a reader sees then).
          const owned = await this.locate(messageId);
          const current = (await this.durable(messageId)) ?? owned.message;
          if (current.state !== "streaming") throw notStreaming(current.state);
          await this.deps.streams
            .open(current, owned.ownerId, delta.index)
            .catch(unavailableAs("Stream state unavailable; retry this delta"));
          continue;
        }
      }
    }
  }

  /** `message.delta` to the thread's subscribers (best effort: a client that misses one re-reads). */
  private async push(
    threadId: string,
    messageId: string,
    delta: { index: number; text: string },
    subscribers: readonly string[],
    originConnectionId: string | undefined,
  ): Promise<void> {
    const recipients = subscribers.filter((id) => id !== originConnectionId);
    if (recipients.length === 0) return;
    const frame = eventFrame("message.delta", {
      message_id: messageId,
      thread_id: threadId,
      index: delta.index,
      text: delta.text,
    });
    await this.deps.fanout?.deliver(threadId, recipients, frame);
  }

  /** complete / error (the agent) and cancel (the thread's owner, or a service). */
  async end(principal: Principal, messageId: string, ending: Ending): Promise<Message> {
    const owned = await this.locate(messageId);
    if (ending.state === "cancelled") {
      if (!canAccessThread(principal, { owner_id: owned.ownerId })) throw messageNotFound();
    } else if (!isService(principal)) {
      throw new ForbiddenError("role_not_allowed", "only a service principal may finish a reply");
    }
    return this.finish(owned, ending, true);
  }

  /**
   * The scheduled look at a stream (a delayed record on the persist queue): closes it if it went
   * idle; otherwise answers in how many ms to look again (null: nothing left to watch).
   */
  async check(threadId: string, messageId: string): Promise<number | null> {
    const snapshot = await this.deps.streams.snapshot(threadId, messageId);
    const now = this.deps.clock.now();
    if (snapshot === null || snapshot.state !== "streaming") {
      const owned = await this.deps.messages.findById(messageId);
      // Not in PostgreSQL yet (its opened record is on its way): look again later.
      if (owned === null) return snapshot === null ? null : this.options.idleTimeoutMs;
      if (owned.message.state !== "streaming") return null;
      const final = snapshot?.final;
      if (final) {
        // Ended in the hot tier, but its final message never reached PostgreSQL: sent again (to
        // SQS and the subscribers), as a repeat of the ending that won.
        await this.finish(owned, endingOf(final), true);
        return null;
      }
      // The hot tier lost it: held again from now, so a live agent has the full timeout to go on.
      await this.deps.streams.open(owned.message, owned.ownerId, 0);
      return this.options.idleTimeoutMs;
    }
    const idle = now - snapshot.lastAppendAtMs;
    if (idle < this.options.idleTimeoutMs) return this.options.idleTimeoutMs - idle;
    await this.closeIdle(threadId, messageId).catch((error: unknown) => {
      // Gone from every tier (its thread was deleted): nothing left to close.
      if (!(error instanceof NotFoundError)) throw error;
    });
    return null;
  }

  /** Schedules the next idle check (called by the persist consumer with the delay `check` gave). */
  scheduleCheck(threadId: string, messageId: string, afterMs: number): Promise<void> {
    return this.deps.publisher.publish(
      { v: 1, kind: "stream_check", thread_id: threadId, message_id: messageId },
      { delaySeconds: Math.min(MAX_CHECK_DELAY_SECONDS, this.delaySeconds(afterMs)) },
    );
  }

  /**
   * Messages as readers see them: a reply still streaming with its content so far and
   * `delta_index`, one that ended with its final form (PostgreSQL may not have it yet).
   */
  async live(threadId: string, messages: readonly Message[]): Promise<Message[]> {
    if (!messages.some((m) => m.state === "streaming")) return [...messages];
    const snapshots = await bestEffort(
      this.deps.diagnostics,
      "stream state unavailable for a read",
      { threadId },
      async () => {
        const ids = messages.filter((m) => m.state === "streaming").map((m) => m.id);
        const found = await Promise.all(ids.map((id) => this.deps.streams.snapshot(threadId, id)));
        return new Map(found.filter((s): s is StreamSnapshot => s !== null).map((s) => [s.messageId, s]));
      },
      new Map<string, StreamSnapshot>(),
    );
    return messages.map((m) => {
      const snapshot = snapshots.get(m.id);
      if (m.state !== "streaming" || snapshot === undefined) return m;
      return snapshot.final ?? withDeltas(snapshot);
    });
  }

  /** The thread's replies still streaming, with their content so far (for a new subscriber). */
  async inProgress(threadId: string): Promise<Message[]> {
    const open = await bestEffort(
      this.deps.diagnostics,
      "stream state unavailable for a subscriber",
      { threadId },
      () => this.deps.streams.openStreams(threadId),
      [],
    );
    return open.map(withDeltas);
  }

  /** Replies of the thread that ended at or after a stream position (for a resuming subscriber). */
  endedSince(threadId: string, pos: number): Promise<Message[]> {
    return bestEffort(
      this.deps.diagnostics,
      "stream state unavailable for a resuming subscriber",
      { threadId },
      () => this.deps.streams.endedSince(threadId, pos, ENDED_REPLAYED),
      [],
    );
  }

  private closeIdle(threadId: string, messageId: string): Promise<Message | null> {
    const ending: Ending = {
      state: "error",
      finishReason: "timeout",
      error: {
        code: "stream_idle",
        message: `no delta for ${Math.round(this.options.idleTimeoutMs / 1000)} s`,
      },
    };
    return this.locate(messageId, threadId).then((owned) => this.finish(owned, ending, false));
  }

  /**
   * Ends the stream through the hot tier (the one place that decides), then makes the final
   * message durable (SQS) and tells the subscribers. A repeat of the ending that won answers the
   * same final message (and sends it to SQS again, in case the first send failed); any other
   * ending of a stream that ended already is refused with 409.
   */
  private async finish(owned: OwnedMessage, ending: Ending, strict: boolean): Promise<Message> {
    const { message: known, ownerId } = owned;
    const unavailable = unavailableAs("Stream state unavailable; retry");
    for (let attempt = 0; attempt < 8; attempt++) {
      const snapshot = await this.deps.streams.snapshot(known.thread_id, known.id).catch(unavailable);
      if (snapshot === null) {
        // No state: the durable tier says whether it still streams (the cached copy may be old).
        const current = (await this.durable(known.id)) ?? known;
        if (current.state !== "streaming") return this.ended(current, ownerId, ending, strict, null);
        await this.deps.streams.open(current, ownerId, 0).catch(unavailable);
        continue;
      }
      // Also for a stream that ended: the script then answers the ending that won, with whom to tell.
      const final = this.finalOf(snapshot, ending);
      const result = await this.deps.streams.finish(final, ownerId, snapshot.deltaIndex).catch(unavailable);
      if (result.kind === "changed" || result.kind === "missing") continue;
      if (result.kind === "ended") {
        return this.ended(
          result.final ?? known,
          ownerId,
          ending,
          strict,
          result.final === null ? null : result.subscribers,
        );
      }
      await this.publishFinal(final, ownerId);
      await this.deps.fanout?.deliver(final.thread_id, result.subscribers, endingFrame(final));
      return final;
    }
    throw new ServiceUnavailableError("The stream kept changing; retry");
  }

  /**
   * A stream that ended before: the same ending again is answered (and, when the hot tier holds
   * its final message, sent to SQS and the subscribers again: the try that ended it may have
   * failed before either); another ending is a conflict.
   */
  private async ended(
    final: Message,
    ownerId: string,
    ending: Ending,
    strict: boolean,
    resendTo: readonly string[] | null,
  ): Promise<Message> {
    if (!strict) return final;
    // A message posted whole never streamed: nothing of it can be ended.
    if (final.state === undefined || final.state !== ending.state) throw notStreaming(final.state);
    if (resendTo !== null) {
      await this.publishFinal(final, ownerId);
      await this.deps.fanout?.deliver(final.thread_id, resendTo, endingFrame(final));
    }
    return final;
  }

  /** The message as PostgreSQL has it (null: not there yet, or PostgreSQL unreachable). */
  private durable(messageId: string): Promise<Message | null> {
    return bestEffort(
      this.deps.diagnostics,
      "could not read a streamed reply from PostgreSQL",
      { messageId },
      async () => (await this.deps.messages.findById(messageId))?.message ?? null,
      null,
    );
  }

  private finalOf(snapshot: StreamSnapshot, ending: Ending): Message {
    const { opened } = snapshot;
    const now = this.deps.clock.now();
    const { state: _state, ...base } = opened;
    return {
      ...base,
      content: ending.content ?? snapshot.content,
      metadata: ending.metadata === undefined ? opened.metadata : { ...opened.metadata, ...ending.metadata },
      ...streamFields({
        state: ending.state,
        finish_reason: ending.finishReason,
        usage: ending.usage ?? null,
        error: ending.error ?? null,
        first_delta_ms:
          snapshot.firstDeltaAtMs === null ? null : clampMs(snapshot.firstDeltaAtMs - snapshot.openedAtMs),
        duration_ms: clampMs(now - snapshot.openedAtMs),
      }),
    };
  }

  private publishFinal(final: Message, ownerId: string): Promise<void> {
    return this.deps.publisher
      .publish({ v: 1, message: final, owner_id: ownerId, accepted_at_ms: this.deps.clock.now() })
      .catch(unavailableAs("Could not store the final message; retry"));
  }

  /** The message and its thread's owner: the hot tier's lookup, else PostgreSQL. */
  private async locate(messageId: string, threadId?: string): Promise<OwnedMessage> {
    const { found } = await lookupMessage(this.deps, messageId);
    if (found === null || (threadId !== undefined && found.message.thread_id !== threadId)) {
      throw messageNotFound();
    }
    this.remember(found.message);
    return found;
  }

  private remember(message: Message): void {
    if (this.threadOf.size >= THREAD_OF_CACHE_SIZE) this.threadOf.clear();
    this.threadOf.set(message.id, message.thread_id);
  }

  private delaySeconds(ms: number): number {
    return Math.max(1, Math.ceil(ms / 1000) + 1);
  }
}

/** Timings are stored as 32-bit integers (PostgreSQL `integer`): about 24 days at most. */
const clampMs = (ms: number): number => Math.min(2_147_483_647, Math.max(0, ms));

/** The ending that produced a final message (to repeat it). */
const endingOf = (final: Message): Ending => ({
  state: final.state === "streaming" || final.state === undefined ? "complete" : final.state,
  finishReason: final.finish_reason ?? "stop",
});

/** A reply still streaming, as a reader sees it: its content so far and the last index in it. */
const withDeltas = (snapshot: StreamSnapshot): Message => ({
  ...snapshot.opened,
  content: snapshot.content,
  delta_index: snapshot.deltaIndex,
});
