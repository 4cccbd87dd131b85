/**
 * The analytics consumer's work for one SQS batch: every persisted message in it goes to ClickHouse
 * in one insert, and every feedback change in one more. ClickHouse deduplicates (messages by id,
 * feedback by reply and user, the newest change winning), so redelivery is harmless.
 *
 * One bad entry holds back only its own record: when a batch insert fails for a reason that is not
 * an outage, each record is inserted on its own, and a record that fails is split in halves until
 * the rows ClickHouse refuses are found; every other row is archived. A record with a row that was
 * refused (or an entry that does not match its schema) fails as poison, so it ends in the
 * dead-letter queue for inspection; its good rows are archived already, and a redrive repeats them
 * harmlessly. An outage fails every record of the batch, to come back after a growing delay.
 */
import { describeError, isTierUnavailable } from "./errors.ts";
import type { Message } from "./model.ts";
import type { AnalyticsStore, Clock, Diagnostics, FeedbackArchive, FeedbackEvent } from "./ports.ts";
import {
  InvalidRecordError,
  parseAnalyticsEnvelope,
  type QueueRecord,
  type RecordFailure,
  type RetryPolicy,
  recordFailure,
} from "./records.ts";
import { isUuid } from "./validation.ts";

export interface ArchiveOutcome {
  readonly failures: RecordFailure[];
  /** Rows archived: messages and feedback changes. */
  readonly rows: number;
  /** ClickHouse insert statements issued. */
  readonly inserts: number;
  /** created → archived, per archived message. */
  readonly lagsMs: number[];
  /** Rows dropped because their thread was erased. */
  readonly erased: number;
}

export interface ArchiveDeps {
  readonly store: AnalyticsStore;
  /** Where feedback changes go; without it a record carrying one fails as poison. */
  readonly feedback?: FeedbackArchive;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

interface Batch {
  readonly record: QueueRecord;
  readonly messages: Message[];
  readonly feedback: FeedbackEvent[];
  /** Why entries of this record could not be archived (it fails as poison if any). */
  readonly problems: string[];
}

/** One kind of entry and the table it goes to. */
interface Lane<T> {
  readonly entries: (batch: Batch) => readonly T[];
  readonly dedupe: (rows: readonly T[]) => T[];
  readonly insert: (rows: readonly T[]) => Promise<void>;
  readonly name: (row: T) => string;
}

interface LaneResult<T> {
  readonly archived: T[];
  readonly inserts: number;
  /** The batch insert failed with an outage: every record of the batch is to be retried. */
  readonly outage?: unknown;
}

interface Isolated<T> {
  readonly archived: T[];
  readonly refused: string[];
  readonly inserts: number;
}

export class ArchiveService {
  constructor(
    private readonly deps: ArchiveDeps,
    private readonly retry: RetryPolicy,
  ) {}

  async process(records: readonly QueueRecord[]): Promise<ArchiveOutcome> {
    const failures: RecordFailure[] = [];
    const fail = (record: QueueRecord, error: unknown): void => {
      if (failures.some((f) => f.id === record.id)) return;
      failures.push(recordFailure(this.retry, record, error));
    };

    const batches: Batch[] = [];
    for (const record of records) {
      try {
        const { messages, feedback, invalid } = parseAnalyticsEnvelope(record.body);
        batches.push({ record, messages, feedback: feedback ?? [], problems: [...invalid] });
      } catch (error) {
        this.deps.diagnostics.warn("poison record on analytics queue", {
          recordId: record.id,
          error: describeError(error),
        });
        fail(record, error);
      }
    }

    // Rows of erased threads (a message or change that was in flight when its thread was deleted)
    // are dropped: ClickHouse's tombstones are checked before every insert.
    let dropped = 0;
    try {
      dropped = await this.dropErased(batches);
    } catch (error) {
      if (!isTierUnavailable(error)) throw error;
      for (const b of batches) fail(b.record, error);
      return { failures, rows: 0, inserts: 0, lagsMs: [], erased: 0 };
    }

    const messages = await this.archive(this.messageLane(), batches, fail);
    const feedback =
      messages.outage === undefined
        ? await this.archive(this.feedbackLane(batches), batches, fail)
        : { archived: [], inserts: 0 };
    const inserts = messages.inserts + feedback.inserts;
    const outage = messages.outage ?? feedback.outage;
    if (outage !== undefined) {
      for (const b of batches) fail(b.record, outage);
    } else {
      for (const b of batches) {
        if (b.problems.length === 0 || failures.some((f) => f.id === b.record.id)) continue;
        this.deps.diagnostics.warn("analytics record has rows that cannot be archived", {
          recordId: b.record.id,
          problems: b.problems,
        });
        fail(b.record, new InvalidRecordError(b.problems.join("; ")));
      }
    }
    const now = this.deps.clock.now();
    return {
      failures,
      rows: messages.archived.length + feedback.archived.length,
      inserts,
      lagsMs: messages.archived.map((m) => now - m.created_at_ms),
      erased: dropped,
    };
  }

  /** Removes the rows of erased threads from the batches; answers how many went. */
  private async dropErased(batches: Batch[]): Promise<number> {
    const threads = new Set(
      batches.flatMap((b) => [...b.messages, ...b.feedback].map((e) => e.thread_id)).filter(isUuid),
    );
    if (threads.size === 0) return 0;
    const erased = await this.deps.store.erasedAmong([...threads]);
    if (erased.size === 0) return 0;
    let dropped = 0;
    for (const [i, b] of batches.entries()) {
      const messages = b.messages.filter((m) => !erased.has(m.thread_id));
      const feedback = b.feedback.filter((e) => !erased.has(e.thread_id));
      dropped += b.messages.length - messages.length + b.feedback.length - feedback.length;
      batches[i] = { ...b, messages, feedback };
    }
    return dropped;
  }

  private messageLane(): Lane<Message> {
    return {
      entries: (b) => b.messages,
      dedupe: (rows) => [...new Map(rows.map((m) => [m.id, m] as const)).values()],
      insert: (rows) => this.deps.store.insert(rows),
      name: (m) => `row ${m.id}`,
    };
  }

  private feedbackLane(batches: readonly Batch[]): Lane<FeedbackEvent> {
    const archive = this.deps.feedback;
    if (archive === undefined) {
      // A deployment without the feedback table's writer: the records wait in the dead-letter queue.
      for (const b of batches)
        if (b.feedback.length > 0) b.problems.push("feedback entries, but no feedback archive is configured");
    }
    return {
      entries: (b) => (archive === undefined ? [] : b.feedback),
      dedupe: (rows) => {
        const newest = new Map<string, FeedbackEvent>();
        for (const e of rows) {
          const key = `${e.message_id}|${e.user_id}`;
          const seen = newest.get(key);
          if (seen === undefined || e.updated_at_ms >= seen.updated_at_ms) newest.set(key, e);
        }
        return [...newest.values()];
      },
      insert: (rows) => (archive as FeedbackArchive).insertFeedback(rows),
      name: (e) => `feedback ${e.message_id}/${e.user_id}`,
    };
  }

  /** One lane's rows of every record in one insert; on bad data, record by record, then halves. */
  private async archive<T>(
    lane: Lane<T>,
    batches: readonly Batch[],
    fail: (record: QueueRecord, error: unknown) => void,
  ): Promise<LaneResult<T>> {
    const carrying = batches.filter((b) => lane.entries(b).length > 0);
    const all = lane.dedupe(carrying.flatMap((b) => lane.entries(b)));
    if (all.length === 0) return { archived: [], inserts: 0 };
    let inserts = 1;
    try {
      await lane.insert(all);
      return { archived: all, inserts };
    } catch (error) {
      if (isTierUnavailable(error)) return { archived: [], inserts, outage: error };
      this.deps.diagnostics.warn("analytics insert failed; isolating the bad rows", {
        error: describeError(error),
      });
      const archived: T[] = [];
      let outage: unknown;
      for (const b of carrying) {
        if (outage !== undefined) {
          fail(b.record, outage);
          continue;
        }
        const unique = lane.dedupe(lane.entries(b));
        try {
          // The whole batch was one record: it failed already, split it at once.
          const isolated =
            carrying.length === 1
              ? await this.isolate(lane, unique, error)
              : await this.insertOrIsolate(lane, unique);
          inserts += isolated.inserts;
          archived.push(...isolated.archived);
          b.problems.push(...isolated.refused);
        } catch (down) {
          if (!isTierUnavailable(down)) throw down;
          outage = down;
          fail(b.record, down);
        }
      }
      return { archived, inserts };
    }
  }

  private async insertOrIsolate<T>(lane: Lane<T>, rows: readonly T[]): Promise<Isolated<T>> {
    if (rows.length === 0) return { archived: [], refused: [], inserts: 0 };
    try {
      await lane.insert(rows);
      return { archived: [...rows], refused: [], inserts: 1 };
    } catch (error) {
      if (isTierUnavailable(error)) throw error;
      const isolated = await this.isolate(lane, rows, error);
      return { ...isolated, inserts: isolated.inserts + 1 };
    }
  }

  /** `rows` failed together (not an outage): halves are tried until the refused rows are found. */
  private async isolate<T>(lane: Lane<T>, rows: readonly T[], error: unknown): Promise<Isolated<T>> {
    if (rows.length === 1) {
      return {
        archived: [],
        refused: [`${lane.name(rows[0] as T)} refused: ${describeError(error)}`],
        inserts: 0,
      };
    }
    const middle = Math.ceil(rows.length / 2);
    const [left, right] = [
      await this.insertOrIsolate(lane, rows.slice(0, middle)),
      await this.insertOrIsolate(lane, rows.slice(middle)),
    ];
    return {
      archived: [...left.archived, ...right.archived],
      refused: [...left.refused, ...right.refused],
      inserts: left.inserts + right.inserts,
    };
  }
}
