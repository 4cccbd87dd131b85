/**
 * Feedback on assistant replies: the thread's owner rates a reply up or down (one rating per user
 * and reply; a new one replaces it) or removes the rating. PostgreSQL holds it, written in the
 * request; ClickHouse gets each change through the analytics queue.
 *
 * Sending a change is part of the request but not of its answer: PostgreSQL's write records the
 * change as unsent in the same statement, the request sends it and marks it sent. If the queue
 * cannot take it, the answer is still the stored feedback; the change stays unsent and the next
 * feedback request that reaches the queue (any user's, after `sendGraceMs`) sends it along. The
 * newest change of a (reply, user) wins in ClickHouse, so a change sent twice, or late, is harmless.
 */

import { bestEffort } from "./best-effort.ts";
import {
  ConflictError,
  describeError,
  ForbiddenError,
  messageNotFound,
  ServiceUnavailableError,
  unavailableAs,
} from "./errors.ts";
import { isService, type Message, type Principal, toEpochSeconds } from "./model.ts";
import type {
  Clock,
  Diagnostics,
  Feedback,
  FeedbackEvent,
  FeedbackPublisher,
  FeedbackRating,
  FeedbackRepository,
  FeedbackTarget,
  RateLimiter,
} from "./ports.ts";
import { admit } from "./rate-limit.ts";

/** Finds a message the principal may see (hot tier first, then PostgreSQL): HistoryReader. */
export interface MessageReader {
  message(
    principal: Principal,
    messageId: string,
  ): Promise<{ readonly value: Message; readonly source: "cache" | "database" }>;
}

export interface FeedbackDeps {
  readonly reader: MessageReader;
  readonly feedback: FeedbackRepository;
  readonly publisher: FeedbackPublisher;
  readonly rateLimiter: RateLimiter;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
  /** How the service waits for a reply PostgreSQL does not hold yet (tests: no real waiting). */
  readonly pause?: (ms: number) => Promise<void>;
}

export interface FeedbackOptions {
  /** How long a change is left to the request that made it before any sender may send it. */
  readonly sendGraceMs: number;
  /** Unsent changes a request takes along after sending its own, at most. */
  readonly relayBatch: number;
  /**
   * A reply shown by the hot tier may still be on its way to PostgreSQL (the persist delay,
   * typically milliseconds): the waits before each new look; after the last, 503.
   */
  readonly persistWaitsMs: readonly number[];
}

export const DEFAULT_FEEDBACK_OPTIONS: FeedbackOptions = {
  sendGraceMs: 30_000,
  relayBatch: 25,
  persistWaitsMs: [50, 100, 200, 400, 800],
};

export interface FeedbackInput {
  readonly rating: FeedbackRating;
  readonly reason: string | null;
  readonly comment: string | null;
}

/** Feedback as the API answers it (times as for messages: epoch seconds, and milliseconds). */
export const feedbackWire = (f: Feedback) => ({
  message_id: f.message_id,
  user_id: f.user_id,
  rating: f.rating,
  reason: f.reason,
  comment: f.comment,
  updated_at: toEpochSeconds(f.updated_at_ms),
  updated_at_ms: f.updated_at_ms,
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class FeedbackService {
  constructor(
    private readonly deps: FeedbackDeps,
    private readonly options: FeedbackOptions = DEFAULT_FEEDBACK_OPTIONS,
  ) {}

  /** Creates or replaces the principal's feedback on the reply. */
  async put(principal: Principal, messageId: string, input: FeedbackInput): Promise<Feedback> {
    const { reply, source } = await this.reply(principal, messageId);
    if (reply.state === "streaming") {
      throw new ConflictError(
        "feedback_not_allowed",
        "The reply is still streaming; rate it once it has ended",
      );
    }
    await admit(this.deps.rateLimiter, principal, this.deps.diagnostics);
    const pause = this.deps.pause ?? sleep;
    for (const wait of [...this.options.persistWaitsMs, null]) {
      const written = await this.deps.feedback
        .put({ ...this.target(principal, reply), ...input })
        .catch(unavailableAs("Feedback store unavailable"));
      if (written !== null) {
        await this.send([written.event]);
        return written.feedback;
      }
      // PostgreSQL lacks a reply it showed a moment ago: its thread was deleted meanwhile.
      if (source === "database") throw messageNotFound();
      if (wait === null) break;
      await pause(wait);
    }
    throw new ServiceUnavailableError("The reply is not stored yet; retry shortly");
  }

  /** Removes the principal's feedback on the reply; removing none is fine (idempotent). */
  async remove(principal: Principal, messageId: string): Promise<void> {
    const { reply } = await this.reply(principal, messageId);
    await admit(this.deps.rateLimiter, principal, this.deps.diagnostics);
    // A reply PostgreSQL does not hold yet has no feedback to remove.
    const change = await this.deps.feedback
      .remove(this.target(principal, reply))
      .catch(unavailableAs("Feedback store unavailable"));
    if (change !== null) await this.send([change]);
  }

  /** The reply, if the principal may rate it: its thread's owner, and an assistant's message. */
  private async reply(
    principal: Principal,
    messageId: string,
  ): Promise<{ reply: Message; source: "cache" | "database" }> {
    if (isService(principal)) {
      throw new ForbiddenError(
        "role_not_allowed",
        "Feedback is given by the thread's owner, not by a service",
      );
    }
    // Another user's thread, no such message, or one that is not a reply: 404 each time (only
    // assistant replies take feedback; a user's or system message is no feedback target).
    const { value, source } = await this.deps.reader.message(principal, messageId);
    if (value.role !== "assistant") throw messageNotFound();
    return { reply: value, source };
  }

  private target(principal: Principal, reply: Message): FeedbackTarget {
    const nowMs = this.deps.clock.now();
    return {
      message: reply,
      model: reply.usage?.model ?? "",
      userId: principal.userId,
      nowMs,
      dueAtMs: nowMs + this.options.sendGraceMs,
    };
  }

  /** Sends the request's change; when that worked, also changes earlier requests could not send. */
  private async send(changes: readonly FeedbackEvent[]): Promise<void> {
    try {
      await this.deps.publisher.publish(changes);
    } catch (error) {
      this.deps.diagnostics.warn(
        "feedback change not sent to the analytics queue; a later request sends it",
        {
          messageId: changes[0]?.message_id,
          error: describeError(error),
        },
      );
      return;
    }
    await bestEffort(
      this.deps.diagnostics,
      "could not mark a feedback change sent (it is sent again later, harmlessly)",
      { messageId: changes[0]?.message_id },
      () => this.deps.feedback.markSent(changes),
      undefined,
    );
    await bestEffort(
      this.deps.diagnostics,
      "could not send earlier feedback changes",
      {},
      () => this.relay(),
      undefined,
    );
  }

  private async relay(): Promise<void> {
    const now = this.deps.clock.now();
    const unsent = await this.deps.feedback.claimUnsent(
      now,
      this.options.relayBatch,
      now + this.options.sendGraceMs,
    );
    if (unsent.length === 0) return;
    await this.deps.publisher.publish(unsent);
    await this.deps.feedback.markSent(unsent);
  }
}
