/**
 * The analytics consumer's work for one SQS batch: every persisted message in it goes to ClickHouse
 * in one insert. ClickHouse deduplicates by message id, so redelivery is harmless.
 *
 * One bad message holds back only its own record: when the batch insert fails for a reason that is
 * not an outage, each record is inserted on its own, and a record that fails is split in halves
 * until the rows ClickHouse refuses are found; every other row is archived. A record with a row
 * that was refused (or a message that does not match the schema) fails as poison, so it ends in
 * the dead-letter queue for inspection; its good rows are archived already, and a redrive repeats
 * them harmlessly.
 */
import { describeError, isTierUnavailable } from "./errors.ts";
import type { Message } from "./model.ts";
import type { AnalyticsStore, Clock, Diagnostics } from "./ports.ts";
import {
  InvalidRecordError,
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

interface Batch {
  readonly record: QueueRecord;
  readonly messages: Message[];
  /** Why messages of this record could not be archived (it fails as poison if any). */
  readonly problems: string[];
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

    const batches: Batch[] = [];
    for (const record of records) {
      try {
        const { messages, invalid } = parseAnalyticsEnvelope(record.body);
        batches.push({ record, messages, problems: [...invalid] });
      } catch (error) {
        this.deps.diagnostics.warn("poison record on analytics queue", {
          recordId: record.id,
          error: describeError(error),
        });
        fail(record, error);
      }
    }
    const all = dedupe(batches.flatMap((b) => b.messages));
    const archived: Message[] = [];
    let inserts = 0;
    if (all.length > 0) {
      inserts += 1;
      try {
        await this.deps.store.insert(all);
        archived.push(...all);
      } catch (error) {
        if (isTierUnavailable(error)) {
          for (const b of batches) fail(b.record, error);
          return { failures, rows: 0, inserts, lagsMs: [] };
        }
        this.deps.diagnostics.warn("analytics insert failed; isolating the bad rows", {
          error: describeError(error),
        });
        let outage: unknown;
        for (const b of batches) {
          if (outage !== undefined) {
            fail(b.record, outage);
            continue;
          }
          const unique = dedupe(b.messages);
          try {
            // The whole batch was one record: it failed already, split it at once.
            const isolated =
              batches.length === 1 ? await this.isolate(unique, error) : await this.insertOrIsolate(unique);
            inserts += isolated.inserts;
            archived.push(...isolated.archived);
            b.problems.push(...isolated.refused);
          } catch (down) {
            if (!isTierUnavailable(down)) throw down;
            outage = down;
            fail(b.record, down);
          }
        }
      }
    }
    for (const b of batches) {
      if (b.problems.length === 0 || failures.some((f) => f.id === b.record.id)) continue;
      this.deps.diagnostics.warn("analytics record has rows that cannot be archived", {
        recordId: b.record.id,
        problems: b.problems,
      });
      fail(b.record, new InvalidRecordError(b.problems.join("; ")));
    }
    const now = this.deps.clock.now();
    return { failures, rows: archived.length, inserts, lagsMs: archived.map((m) => now - m.created_at_ms) };
  }

  private async insertOrIsolate(messages: readonly Message[]): Promise<Isolated> {
    if (messages.length === 0) return { archived: [], refused: [], inserts: 0 };
    try {
      await this.deps.store.insert(messages);
      return { archived: [...messages], refused: [], inserts: 1 };
    } catch (error) {
      if (isTierUnavailable(error)) throw error;
      const isolated = await this.isolate(messages, error);
      return { ...isolated, inserts: isolated.inserts + 1 };
    }
  }

  /** `messages` failed together (not an outage): halves are tried until the refused rows are found. */
  private async isolate(messages: readonly Message[], error: unknown): Promise<Isolated> {
    if (messages.length === 1) {
      return {
        archived: [],
        refused: [`row ${messages[0]?.id} refused: ${describeError(error)}`],
        inserts: 0,
      };
    }
    const middle = Math.ceil(messages.length / 2);
    const [left, right] = [
      await this.insertOrIsolate(messages.slice(0, middle)),
      await this.insertOrIsolate(messages.slice(middle)),
    ];
    return {
      archived: [...left.archived, ...right.archived],
      refused: [...left.refused, ...right.refused],
      inserts: left.inserts + right.inserts,
    };
  }
}

interface Isolated {
  readonly archived: Message[];
  readonly refused: string[];
  readonly inserts: number;
}

const dedupe = (messages: readonly Message[]): Message[] => [
  ...new Map(messages.map((m) => [m.id, m] as const)).values(),
];
