/** Messages in ClickHouse: one JSONEachRow insert per consumer batch. */
import type { ClickHouseClient } from "@clickhouse/client";
import type { Message } from "../../core/model.ts";
import type { AnalyticsStore } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

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

export class ClickHouseMessageArchive implements AnalyticsStore {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly guard: TierGuard,
    private readonly table = "messages",
  ) {}

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

  ping(): Promise<void> {
    return this.guard.run(async () => {
      const result = await this.client.ping();
      if (!result.success) throw result.error;
    });
  }
}
