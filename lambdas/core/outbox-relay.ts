/**
 * Messages committed synchronously (SQS-down fallback, rollback mode) never went through the
 * persist consumer; the outbox relay forwards them to the analytics queue so ClickHouse still gets
 * every message, and confirms them to the hot tier, which makes visible any that were committed
 * while it was unreachable. Runs on a schedule.
 */
import { bestEffort } from "./best-effort.ts";
import type { AnalyticsPublisher, Diagnostics, MessageCache, MessageRepository } from "./ports.ts";

export class OutboxRelay {
  constructor(
    private readonly deps: {
      messages: MessageRepository;
      analytics: AnalyticsPublisher;
      cache: MessageCache;
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
      await bestEffort(
        this.deps.diagnostics,
        "could not confirm relayed messages to the cache",
        { messages: pending.length },
        () => this.deps.cache.refresh(pending),
        [],
      );
      await this.deps.messages.clearOutbox(pending.map((m) => m.id));
      forwarded += pending.length;
      if (pending.length < this.batchSize) break;
    }
    return forwarded;
  }
}
