/**
 * In-memory fakes of the feedback, usage and analytics ports (lambdas/core/ports.ts), beside
 * fakes.ts and with the same outage switch. The feedback repository follows the PostgreSQL
 * adapter's rules: a reply PostgreSQL does not hold takes no feedback, every change of a (reply,
 * user) gets a higher version than the one before (also across a removal), and stays unsent until
 * marked sent.
 */
import type {
  AnalyticsQuery,
  AnalyticsReader,
  AnalyticsSummary,
  Feedback,
  FeedbackArchive,
  FeedbackEvent,
  FeedbackPublisher,
  FeedbackRepository,
  FeedbackTarget,
  FeedbackWrite,
  ThreadUsage,
  UsageRepository,
} from "../../lambdas/core/ports.ts";
import { type QueueRecord, serializeFeedbackEnvelope } from "../../lambdas/core/records.ts";
import { ConstraintError, type FakeMessageRepository, TierFake } from "./fakes.ts";

const keyOf = (messageId: string, userId: string): string => `${messageId}|${userId}`;

interface Change {
  readonly event: FeedbackEvent;
  /** null: sent. */
  dueAtMs: number | null;
}

export class FakeFeedbackRepository extends TierFake<keyof FeedbackRepository> implements FeedbackRepository {
  readonly feedback = new Map<string, Feedback>();
  readonly changes = new Map<string, Change>();

  /** `messages`: what PostgreSQL holds (a reply must be there to take feedback). */
  constructor(private readonly messages: FakeMessageRepository) {
    super("postgres");
  }

  async put(write: FeedbackWrite): Promise<{ feedback: Feedback; event: FeedbackEvent } | null> {
    this.enter("put", write);
    if (!this.messages.rows.has(write.message.id)) return null;
    const event = this.change(write, { rating: write.rating, reason: write.reason, deleted: false });
    const feedback: Feedback = {
      message_id: write.message.id,
      user_id: write.userId,
      rating: write.rating,
      reason: write.reason,
      comment: write.comment,
      updated_at_ms: event.updated_at_ms,
    };
    this.feedback.set(keyOf(write.message.id, write.userId), feedback);
    return { feedback, event };
  }

  async remove(target: FeedbackTarget): Promise<FeedbackEvent | null> {
    this.enter("remove", target);
    const key = keyOf(target.message.id, target.userId);
    const existing = this.feedback.get(key);
    if (existing === undefined) return null;
    this.feedback.delete(key);
    return this.change(target, { rating: existing.rating, reason: existing.reason, deleted: true });
  }

  async claimUnsent(nowMs: number, limit: number, claimUntilMs: number): Promise<FeedbackEvent[]> {
    this.enter("claimUnsent", nowMs, limit, claimUntilMs);
    const due = [...this.changes.values()]
      .filter((c) => c.dueAtMs !== null && c.dueAtMs <= nowMs)
      .sort((a, b) => (a.dueAtMs ?? 0) - (b.dueAtMs ?? 0))
      .slice(0, limit);
    for (const c of due) c.dueAtMs = claimUntilMs;
    return due.map((c) => c.event);
  }

  async markSent(events: readonly FeedbackEvent[]): Promise<void> {
    this.enter("markSent", events);
    for (const e of events) {
      const change = this.changes.get(keyOf(e.message_id, e.user_id));
      if (change !== undefined && change.event.updated_at_ms === e.updated_at_ms) change.dueAtMs = null;
    }
  }

  /** Changes not marked sent, oldest first. */
  unsent(): FeedbackEvent[] {
    return [...this.changes.values()]
      .filter((c) => c.dueAtMs !== null)
      .map((c) => c.event)
      .sort((a, b) => a.updated_at_ms - b.updated_at_ms);
  }

  private change(
    target: FeedbackTarget,
    what: Pick<FeedbackEvent, "rating" | "reason" | "deleted">,
  ): FeedbackEvent {
    const key = keyOf(target.message.id, target.userId);
    const previous = this.changes.get(key)?.event.updated_at_ms ?? 0;
    const event: FeedbackEvent = {
      message_id: target.message.id,
      thread_id: target.message.thread_id,
      user_id: target.userId,
      ...what,
      model: target.model,
      message_created_at: target.message.created_at,
      updated_at_ms: Math.max(target.nowMs, previous + 1),
    };
    this.changes.set(key, { event, dueAtMs: target.dueAtMs });
    return event;
  }
}

/** The analytics queue's feedback envelopes; a change of a reply in `rejectIds` is refused as bad data. */
export class FakeFeedbackPublisher extends TierFake<"publish"> implements FeedbackPublisher {
  readonly batches: FeedbackEvent[][] = [];
  readonly rejectIds = new Set<string>();

  constructor() {
    super("sqs");
  }

  async publish(events: readonly FeedbackEvent[]): Promise<void> {
    this.enter("publish", events);
    const bad = events.find((e) => this.rejectIds.has(e.message_id));
    if (bad !== undefined) throw new ConstraintError(`cannot publish ${bad.message_id}`);
    this.batches.push([...events]);
  }

  sent(): FeedbackEvent[] {
    return this.batches.flat();
  }

  /** The published envelopes as the analytics consumer receives them. */
  records(receiveCount = 1): QueueRecord[] {
    return this.batches.map((b, i) => ({
      id: `feedback-${i}`,
      body: serializeFeedbackEnvelope(b),
      receiveCount,
    }));
  }
}

/**
 * ClickHouse's `feedback` table as a deduplicating read (FINAL) sees it: per (reply, user) the row
 * with the highest updated_at_ms. Changes of replies in `rejectIds` make an insert fail as bad data.
 */
export class FakeFeedbackArchive extends TierFake<"insertFeedback"> implements FeedbackArchive {
  readonly rows = new Map<string, FeedbackEvent>();
  readonly inserts: FeedbackEvent[][] = [];
  readonly rejectIds = new Set<string>();

  constructor() {
    super("clickhouse");
  }

  async insertFeedback(events: readonly FeedbackEvent[]): Promise<void> {
    this.enter("insertFeedback", events);
    const bad = events.find((e) => this.rejectIds.has(e.message_id));
    if (bad !== undefined) throw new ConstraintError(`cannot parse feedback row ${bad.message_id}`);
    this.inserts.push([...events]);
    for (const e of events) {
      const key = keyOf(e.message_id, e.user_id);
      const seen = this.rows.get(key);
      if (seen === undefined || e.updated_at_ms >= seen.updated_at_ms) this.rows.set(key, e);
    }
  }

  /** The ratings that count: newest change per (reply, user), removals left out. */
  live(): FeedbackEvent[] {
    return [...this.rows.values()].filter((e) => !e.deleted);
  }
}

/** A thread's totals computed from the fakes' rows, as the PostgreSQL query computes them. */
export class FakeUsageRepository extends TierFake<"threadUsage"> implements UsageRepository {
  constructor(
    private readonly messages: FakeMessageRepository,
    private readonly feedback: FakeFeedbackRepository,
  ) {
    super("postgres");
  }

  async threadUsage(threadId: string): Promise<ThreadUsage> {
    this.enter("threadUsage", threadId);
    const rows = [...this.messages.rows.values()].filter((m) => m.thread_id === threadId);
    const replies = rows.filter((m) => m.role === "assistant");
    const ids = new Set(replies.map((m) => m.id));
    const ratings = [...this.feedback.feedback.values()].filter((f) => ids.has(f.message_id));
    const state = (s: string) => replies.filter((m) => (m.state ?? "complete") === s).length;
    return {
      messages: {
        total: rows.length,
        user: rows.filter((m) => m.role === "user").length,
        assistant: replies.length,
        system: rows.filter((m) => m.role === "system").length,
      },
      assistant_states: {
        streaming: state("streaming"),
        complete: state("complete"),
        cancelled: state("cancelled"),
        error: state("error"),
      },
      tokens: {
        input: rows.reduce((sum, m) => sum + (m.usage?.input_tokens ?? 0), 0),
        output: rows.reduce((sum, m) => sum + (m.usage?.output_tokens ?? 0), 0),
      },
      feedback: {
        up: ratings.filter((f) => f.rating === "up").length,
        down: ratings.filter((f) => f.rating === "down").length,
      },
    };
  }
}

/** Answers what it is given; records the queries it was asked. */
export class FakeAnalyticsReader extends TierFake<"summarize"> implements AnalyticsReader {
  readonly queries: AnalyticsQuery[] = [];
  answer: AnalyticsSummary;

  constructor(answer: AnalyticsSummary) {
    super("clickhouse");
    this.answer = answer;
  }

  async summarize(query: AnalyticsQuery): Promise<AnalyticsSummary> {
    this.enter("summarize", query);
    this.queries.push(query);
    return this.answer;
  }
}
