/**
 * The outbox holds stored messages that still have to reach the analytics queue or be confirmed
 * to the hot tier: those committed synchronously (SQS-down fallback, rollback mode), and those the
 * persist consumer stored while the analytics queue or the hot tier was unreachable. The relay
 * forwards them (ClickHouse deduplicates a repeat), confirms them to the hot tier — which makes
 * visible any that never were, and they are pushed to the subscribers — and clears them only
 * then. Runs on a schedule.
 */
import { bestEffort } from "./best-effort.ts";
import { announceLate } from "./events.ts";
import type { Fanout } from "./fanout.ts";
import type { AnalyticsPublisher, Diagnostics, MessageCache, MessageRepository } from "./ports.ts";
import type { Settled } from "./sequence.ts";

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
  ) {}

  /** Forwards pending messages until none are left or `maxBatches` is reached. */
  async drain(maxBatches: number): Promise<number> {
    let forwarded = 0;
    for (let i = 0; i < maxBatches; i++) {
      const pending = await this.deps.messages.pendingOutbox(this.batchSize);
      if (pending.length === 0) break;
      await this.deps.analytics.publish(pending);
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
      forwarded += pending.length;
      if (pending.length < this.batchSize) break;
    }
    return forwarded;
  }
}
