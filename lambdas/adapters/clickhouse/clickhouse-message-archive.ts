/** Messages and feedback changes in ClickHouse: one JSONEachRow insert per table and consumer batch. */
import type { ClickHouseClient } from "@clickhouse/client";
import type { Message } from "../../core/model.ts";
import type { AnalyticsStore, FeedbackArchive, FeedbackEvent } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { erasedAmong } from "./clickhouse-archive-eraser.ts";

export const toArchiveRow = (m: Message, archivedAtMs: number) => ({
  id: m.id,
  thread_id: m.thread_id,
  seq: m.seq,
  role: m.role,
  user_id: m.user_id,
  content: m.content,
  metadata: JSON.stringify(m.metadata),
  client_message_id: m.client_message_id ?? "",
  // Epoch seconds: parsed without reference to the server's time zone.
  created_at: m.created_at,
  created_at_ms: m.created_at_ms,
  archived_at_ms: archivedAtMs,
  state: m.state ?? "complete",
  finish_reason: m.finish_reason ?? "",
  model: m.usage?.model ?? "",
  input_tokens: m.usage?.input_tokens ?? 0,
  output_tokens: m.usage?.output_tokens ?? 0,
  first_delta_ms: m.first_delta_ms ?? null,
  duration_ms: m.duration_ms ?? null,
});

/** A row of the `feedback` table (ReplacingMergeTree(updated_at_ms), ORDER BY (message_id, user_id)). */
export const toFeedbackRow = (e: FeedbackEvent) => ({
  message_id: e.message_id,
  thread_id: e.thread_id,
  user_id: e.user_id,
  rating: e.rating,
  reason: e.reason ?? "",
  model: e.model,
  deleted: e.deleted ? 1 : 0,
  // The reply's created_at, the same for every change: all of them land in one partition, where
  // merges (and FINAL) keep the newest.
  created_at: e.message_created_at,
  updated_at_ms: e.updated_at_ms,
});

export class ClickHouseMessageArchive implements AnalyticsStore, FeedbackArchive {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly guard: TierGuard,
    private readonly table = "messages",
    private readonly feedbackTable = "feedback",
  ) {}

  insertFeedback(events: readonly FeedbackEvent[]): Promise<void> {
    return this.guard.run(async () => {
      await this.client.insert({
        table: this.feedbackTable,
        values: events.map(toFeedbackRow),
        format: "JSONEachRow",
      });
    });
  }

  insert(messages: readonly Message[]): Promise<void> {
    const now = Date.now();
    return this.guard.run(async () => {
      await this.client.insert({
        table: this.table,
        values: messages.map((m) => toArchiveRow(m, now)),
        format: "JSONEachRow",
      });
    });
  }

  erasedAmong(threadIds: readonly string[]): Promise<ReadonlySet<string>> {
    return this.guard.run(() => erasedAmong(this.client, threadIds));
  }

  ping(): Promise<void> {
    return this.guard.run(async () => {
      const result = await this.client.ping();
      if (!result.success) throw result.error;
    });
  }
}
