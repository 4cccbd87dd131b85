/**
 * Messages committed synchronously (SQS-down fallback, rollback mode) never went through the
 * persist consumer; the outbox relay forwards them to the analytics queue so ClickHouse still gets
 * every message. Runs on a schedule.
 */
import type { AnalyticsPublisher, MessageRepository } from "./ports.ts";

export class OutboxRelay {
  constructor(
    private readonly deps: { messages: MessageRepository; analytics: AnalyticsPublisher },
    private readonly batchSize: number,
  ) {}

  /** Forwards pending messages until none are left or `maxBatches` is reached. */
  async drain(maxBatches: number): Promise<number> {
    let forwarded = 0;
    for (let i = 0; i < maxBatches; i++) {
      const pending = await this.deps.messages.pendingOutbox(this.batchSize);
      if (pending.length === 0) break;
      await this.deps.analytics.publish(pending);
      await this.deps.messages.clearOutbox(pending.map((m) => m.id));
      forwarded += pending.length;
      if (pending.length < this.batchSize) break;
    }
    return forwarded;
  }
}
