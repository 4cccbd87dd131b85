/**
 * The persist consumer's work for one SQS batch: one idempotent PostgreSQL insert for the whole
 * batch, forward what is stored to the analytics queue, and confirm it to the hot tier — which
 * then stops keeping those messages for PostgreSQL's sake, and makes visible (with the next stream
 * position, pushed to the subscribers) any that were never made visible on the accept path.
 * Records that fail are reported individually, so the good ones of a batch never run again.
 */
import { describeError, isTierUnavailable } from "./errors.ts";
import { announceLate } from "./events.ts";
import type { Fanout } from "./fanout.ts";
import type { Message } from "./model.ts";
import {
  type AnalyticsPublisher,
  type Clock,
  type CommitResult,
  type Diagnostics,
  isStreamCheck,
  type MessageCache,
  type MessageEnvelope,
  type MessageRepository,
  type OwnedMessage,
  type StreamCheckEnvelope,
} from "./ports.ts";
import {
  parsePersistEnvelope,
  type QueueRecord,
  type RecordFailure,
  type RetryPolicy,
  recordFailure,
} from "./records.ts";
import type { Settled } from "./sequence.ts";

/** Watches streamed replies for idleness (StreamService); absent: stream checks are dropped. */
export interface StreamWatch {
  /** Closes the stream if idle; else in how many ms to look again (null: done). */
  check(threadId: string, messageId: string): Promise<number | null>;
  scheduleCheck(threadId: string, messageId: string, afterMs: number): Promise<void>;
}

export interface PersistDeps {
  readonly messages: MessageRepository;
  readonly analytics: AnalyticsPublisher;
  readonly cache: MessageCache;
  /** Pushes messages made visible late to their subscribers (absent: subscribers catch up). */
  readonly fanout?: Fanout;
  readonly settled: Settled;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
  readonly streams?: StreamWatch;
}

export interface PersistOutcome {
  readonly failures: RecordFailure[];
  /** Rows this batch added to PostgreSQL. */
  readonly inserted: number;
  /** Records whose message was stored before (SQS redelivery, client retry). */
  readonly duplicates: number;
  /** Accept → stored, for the messages this batch inserted. */
  readonly lagsMs: number[];
  /** PostgreSQL statements issued. */
  readonly statements: number;
  /** Messages handed to the outbox relay (the analytics queue or the hot tier was unreachable). */
  readonly handedToOutbox: number;
  /** Messages dropped because their thread was erased. */
  readonly erased: number;
}

interface Parsed {
  readonly record: QueueRecord;
  readonly envelope: MessageEnvelope;
}

export class PersistService {
  constructor(
    private readonly deps: PersistDeps,
    private readonly retry: RetryPolicy,
  ) {}

  async process(records: readonly QueueRecord[]): Promise<PersistOutcome> {
    const failures: RecordFailure[] = [];
    const fail = (record: QueueRecord, error: unknown): void => {
      failures.push(recordFailure(this.retry, record, error));
    };

    const parsed: Parsed[] = [];
    const checks: { record: QueueRecord; envelope: StreamCheckEnvelope }[] = [];
    for (const record of records) {
      try {
        const envelope = parsePersistEnvelope(record.body);
        if (isStreamCheck(envelope)) checks.push({ record, envelope });
        else parsed.push({ record, envelope });
      } catch (error) {
        this.deps.diagnostics.warn("poison record on persist queue", {
          recordId: record.id,
          error: describeError(error),
        });
        fail(record, error);
      }
    }

    await Promise.all(
      checks.map(({ record, envelope }) => this.checkStream(envelope).catch((error) => fail(record, error))),
    );

    // One row per message; of a streamed reply's two records (opened, final), the final one.
    const unique = new Map<string, OwnedMessage>();
    for (const { envelope } of parsed) {
      const seen = unique.get(envelope.message.id);
      if (
        seen === undefined ||
        (seen.message.state === "streaming" && envelope.message.state !== "streaming")
      ) {
        unique.set(envelope.message.id, { message: envelope.message, ownerId: envelope.owner_id });
      }
    }

    const { stored, errors, statements } = await this.store([...unique.values()]);
    const persisted: Parsed[] = [];
    for (const item of parsed) {
      const error = errors.get(item.envelope.message.id);
      if (error !== undefined) fail(item.record, error);
      else persisted.push(item);
    }

    // Messages of erased threads end here: not stored, not archived, not shown again.
    const erased = [...stored.values()].filter((r) => r.erased === true).length;
    const canonical = [...stored.values()].filter((r) => r.erased !== true).map((r) => r.message);
    let statementsUsed = statements;
    let handedToOutbox = 0;
    if (canonical.length > 0) {
      // ClickHouse gets a streamed reply once, in its final state.
      const archived = canonical.filter((m) => m.state !== "streaming");
      const [forwarded, confirmed] = await Promise.allSettled([
        archived.length > 0 ? this.deps.analytics.publish(archived) : Promise.resolve(),
        this.confirmToCache(canonical),
      ]);
      const unfinished = [forwarded, confirmed].find((r) => r.status === "rejected");
      if (unfinished !== undefined) {
        // The analytics queue or the hot tier is unreachable: the outbox relay takes the messages
        // over (it forwards them and confirms them to the hot tier), so the records are done. Only
        // if that fails too are they run again (the insert is a no-op).
        statementsUsed++;
        try {
          await this.deps.messages.addToOutbox(canonical.map((m) => m.id));
          handedToOutbox = canonical.length;
          this.deps.diagnostics.warn("analytics queue or cache unavailable; messages handed to the outbox", {
            messages: canonical.length,
            error: describeError(unfinished.reason),
          });
        } catch (error) {
          for (const item of persisted)
            fail(item.record, isTierUnavailable(error) ? error : unfinished.reason);
          persisted.length = 0;
        }
      }
    }

    // Each inserted message counts once (with its lag); every other record that succeeded repeated
    // a message stored before, or earlier in this batch.
    const now = this.deps.clock.now();
    const counted = new Set<string>();
    const lagsMs: number[] = [];
    let duplicates = 0;
    for (const { envelope } of persisted) {
      const id = envelope.message.id;
      if (stored.get(id)?.erased === true) continue;
      if (stored.get(id)?.inserted === true && !counted.has(id)) {
        counted.add(id);
        lagsMs.push(now - envelope.accepted_at_ms);
      } else {
        duplicates++;
      }
    }
    return {
      failures,
      inserted: [...stored.values()].filter((r) => r.inserted).length,
      duplicates,
      lagsMs,
      statements: statementsUsed,
      handedToOutbox,
      erased,
    };
  }

  /** A scheduled look at a stream: it closes an idle one, or schedules the next look. */
  private async checkStream(envelope: StreamCheckEnvelope): Promise<void> {
    if (this.deps.streams === undefined) return;
    const again = await this.deps.streams.check(envelope.thread_id, envelope.message_id);
    if (again !== null) {
      await this.deps.streams.scheduleCheck(envelope.thread_id, envelope.message_id, again);
    }
  }

  /** One statement for the batch; only if it fails for a non-transient reason, one per message. */
  private async store(
    messages: readonly OwnedMessage[],
  ): Promise<{ stored: Map<string, CommitResult>; errors: Map<string, unknown>; statements: number }> {
    const stored = new Map<string, CommitResult>();
    const errors = new Map<string, unknown>();
    if (messages.length === 0) return { stored, errors, statements: 0 };
    try {
      for (const result of await this.deps.messages.persistBatch(messages))
        stored.set(result.message.id, result);
      return { stored, errors, statements: 1 };
    } catch (error) {
      if (isTierUnavailable(error) || messages.length === 1) {
        for (const m of messages) errors.set(m.message.id, error);
        return { stored, errors, statements: 1 };
      }
      this.deps.diagnostics.warn("batch insert failed; isolating the bad records", {
        error: describeError(error),
      });
    }
    for (const m of messages) {
      try {
        for (const result of await this.deps.messages.persistBatch([m]))
          stored.set(result.message.id, result);
      } catch (error) {
        errors.set(m.message.id, error);
      }
    }
    return { stored, errors, statements: 1 + messages.length };
  }

  /**
   * Tells the hot tier these messages are in PostgreSQL; it makes visible those that never were,
   * and they are pushed to the subscribers. Rejects when the hot tier cannot be told (the outbox
   * relay tells it later): a message must not stay invisible to subscribers that resume.
   */
  private async confirmToCache(canonical: readonly Message[]): Promise<void> {
    const settled = this.deps.settled();
    const late = await this.deps.cache.refresh(canonical);
    if (this.deps.fanout === undefined) return;
    await announceLate(this.deps.fanout, late, settled).catch((error: unknown) => {
      // Pushing is best effort: subscribers see the gap in positions and replay.
      this.deps.diagnostics.warn("could not push late messages", { error: describeError(error) });
    });
  }
}
