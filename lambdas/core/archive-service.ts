/**
 * The analytics consumer's work for one SQS batch: every persisted message in it goes to ClickHouse
 * in one insert. ClickHouse deduplicates by message id, so redelivery is harmless.
 */
import { describeError, isTierUnavailable } from "./errors.ts";
import type { Message } from "./model.ts";
import type { AnalyticsStore, Clock, Diagnostics } from "./ports.ts";
import {
  parseAnalyticsEnvelope,
  type QueueRecord,
  type RecordFailure,
  type RetryPolicy,
  recordFailure,
} from "./records.ts";

export interface ArchiveOutcome {
  readonly failures: RecordFailure[];
  readonly rows: number;
  /** ClickHouse insert statements issued. */
  readonly inserts: number;
  /** created → archived, per archived message. */
  readonly lagsMs: number[];
}

export class ArchiveService {
  constructor(
    private readonly deps: { store: AnalyticsStore; clock: Clock; diagnostics: Diagnostics },
    private readonly retry: RetryPolicy,
  ) {}

  async process(records: readonly QueueRecord[]): Promise<ArchiveOutcome> {
    const failures: RecordFailure[] = [];
    const fail = (record: QueueRecord, error: unknown): void => {
      failures.push(recordFailure(this.retry, record, error));
    };

    const batches: { record: QueueRecord; messages: Message[] }[] = [];
    for (const record of records) {
      try {
        batches.push({ record, messages: parseAnalyticsEnvelope(record.body) });
      } catch (error) {
        this.deps.diagnostics.warn("poison record on analytics queue", {
          recordId: record.id,
          error: describeError(error),
        });
        fail(record, error);
      }
    }
    const all = dedupe(batches.flatMap((b) => b.messages));
    if (all.length === 0) return { failures, rows: 0, inserts: 0, lagsMs: [] };

    const archived: Message[] = [];
    let inserts = 1;
    try {
      await this.deps.store.insert(all);
      archived.push(...all);
    } catch (error) {
      if (isTierUnavailable(error) || batches.length === 1) {
        for (const b of batches) fail(b.record, error);
      } else {
        this.deps.diagnostics.warn("analytics insert failed; isolating the bad records", {
          error: describeError(error),
        });
        for (const b of batches) {
          inserts++;
          try {
            const unique = dedupe(b.messages);
            await this.deps.store.insert(unique);
            archived.push(...unique);
          } catch (inner) {
            fail(b.record, inner);
          }
        }
      }
    }
    const now = this.deps.clock.now();
    return { failures, rows: archived.length, inserts, lagsMs: archived.map((m) => now - m.created_at_ms) };
  }
}

const dedupe = (messages: readonly Message[]): Message[] => [
  ...new Map(messages.map((m) => [m.id, m] as const)).values(),
];
