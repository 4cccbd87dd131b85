/**
 * The outbox holds stored messages that still have to reach the analytics queue or be confirmed
 * to the hot tier: those committed synchronously (SQS-down fallback, rollback mode), and those the
 * persist consumer stored while the analytics queue or the hot tier was unreachable. The relay
 * forwards them (ClickHouse deduplicates a repeat), confirms them to the hot tier — which makes
 * visible any that never were, and they are pushed to the subscribers — and clears them only
 * then. Runs on a schedule.
 *
 * One bad entry blocks only itself: when a batch fails for a reason that is not an outage, its
 * entries are forwarded one by one, and one that fails alone is deferred (due again after a
 * growing delay), then parked after a few attempts, for an operator to look at. An outage (a tier
 * down) stops the run instead: nothing is blamed on the entries, the next run tries again.
 */
import { bestEffort } from "./best-effort.ts";
import { describeError, isTierUnavailable } from "./errors.ts";
import { announceLate } from "./events.ts";
import type { Fanout } from "./fanout.ts";
import type { Message } from "./model.ts";
import type {
  AnalyticsPublisher,
  Diagnostics,
  MessageCache,
  MessageRepository,
  OutboxRetryPolicy,
} from "./ports.ts";
import type { Settled } from "./sequence.ts";

export interface DrainOutcome {
  /** Entries forwarded, confirmed and cleared. */
  readonly forwarded: number;
  /** Entries that failed on their own this run (deferred, or parked). */
  readonly deferred: number;
  /** Entries parked now, for an operator to release. */
  readonly parked: number;
}

export const DEFAULT_OUTBOX_RETRY: OutboxRetryPolicy = {
  maxAttempts: 8,
  baseDelaySeconds: 60,
  maxDelaySeconds: 3600,
};

export class OutboxRelay {
  constructor(
    private readonly deps: {
      messages: MessageRepository;
      analytics: AnalyticsPublisher;
      cache: MessageCache;
      /** Pushes messages made visible late to their subscribers (absent: subscribers catch up). */
      fanout?: Fanout;
      settled: Settled;
      diagnostics: Diagnostics;
    },
    private readonly batchSize: number,
    private readonly retry: OutboxRetryPolicy = DEFAULT_OUTBOX_RETRY,
  ) {}

  /** Forwards due entries until none are left or `maxBatches` is reached. */
  async drain(maxBatches: number): Promise<DrainOutcome> {
    let forwarded = 0;
    let deferred = 0;
    for (let i = 0; i < maxBatches; i++) {
      const pending = await this.deps.messages.pendingOutbox(this.batchSize);
      if (pending.length === 0) break;
      try {
        await this.forward(pending);
        forwarded += pending.length;
      } catch (error) {
        if (isTierUnavailable(error)) throw error;
        this.deps.diagnostics.warn("outbox batch failed; forwarding its entries one by one", {
          entries: pending.length,
          error: describeError(error),
        });
        for (const message of pending) {
          try {
            await this.forward([message]);
            forwarded += 1;
          } catch (alone) {
            if (isTierUnavailable(alone)) throw alone;
            deferred += 1;
            this.deps.diagnostics.warn("outbox entry failed on its own; deferred", {
              messageId: message.id,
              threadId: message.thread_id,
              error: describeError(alone),
            });
            await this.deps.messages.deferOutbox(message.id, describeError(alone), this.retry);
          }
        }
      }
      if (pending.length < this.batchSize) break;
    }
    const parked = await this.deps.messages.parkedOutbox();
    return { forwarded, deferred, parked };
  }

  /** Publish, confirm to the hot tier (push what that made visible), then clear. */
  private async forward(pending: readonly Message[]): Promise<void> {
    // A reply still streaming is archived by its final form (the persist consumer forwards it).
    const archived = pending.filter((m) => m.state !== "streaming");
    if (archived.length > 0) await this.deps.analytics.publish(archived);
    // Not cleared unless confirmed: the next run tries again (the forward repeats harmlessly).
    const settled = this.deps.settled();
    const late = await this.deps.cache.refresh(pending);
    const { fanout } = this.deps;
    if (fanout !== undefined) {
      await bestEffort(
        this.deps.diagnostics,
        "could not push late messages",
        {},
        () => announceLate(fanout, late, settled),
        undefined,
      );
    }
    await this.deps.messages.clearOutbox(pending.map((m) => m.id));
  }
}
