/**
 * The admin analytics read: two aggregate queries (messages, feedback) over the messages created in
 * the query's days, side by side, each grouped by day or model, with totals.
 *
 * Each message and each (reply, user)'s feedback counts once: both tables are ReplacingMergeTrees
 * read with FINAL (the newest archived row of a message, the newest change of a feedback). The only
 * filter before the merge is on `created_at`, which is the same in every row of a key (a message's
 * creation; for feedback, its reply's), so it cannot drop the newest row and keep an older one;
 * every other condition is inside the aggregates, after the merge.
 *
 * ClickHouse 18.16 has no query parameters: the only values in the SQL are integers computed here.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import { EMPTY_FIGURES } from "../../core/analytics-service.ts";
import type {
  AnalyticsFigures,
  AnalyticsGroup,
  AnalyticsQuery,
  AnalyticsReader,
  AnalyticsSummary,
  Percentiles,
} from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

const DAY_SECONDS = 86_400;

/** Epoch seconds of a day's start (UTC); `day` is a validated YYYY-MM-DD. */
export const dayStartSeconds = (day: string): number => {
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (!Number.isInteger(ms)) throw new RangeError(`not a day: ${day}`);
  return ms / 1000;
};

const dayOfNumber = (dayNumber: number): string =>
  new Date(dayNumber * DAY_SECONDS * 1000).toISOString().slice(0, 10);

/** Days since the epoch in UTC, whatever the server's time zone. */
const GROUP_KEY = {
  day: `intDiv(toUInt32(created_at), ${DAY_SECONDS})`,
  model: "model",
} as const;

const percentileColumns = (column: string): string =>
  `countIf(isNotNull(${column})) AS ${column}_n,
   quantilesIf(0.5, 0.95)(toFloat64(assumeNotNull(${column})), isNotNull(${column})) AS ${column}_q`;

/** 64-bit integers come as strings in ClickHouse's JSON. */
type Count = string | number;

interface MessageRow {
  k: Count;
  total: Count;
  role_user: Count;
  role_assistant: Count;
  role_system: Count;
  state_streaming: Count;
  state_complete: Count;
  state_cancelled: Count;
  state_error: Count;
  input_tokens: Count;
  output_tokens: Count;
  first_delta_ms_n: Count;
  first_delta_ms_q: (number | null)[];
  duration_ms_n: Count;
  duration_ms_q: (number | null)[];
}

interface FeedbackRow {
  k: Count;
  up: Count;
  down: Count;
}

const roundMs = (value: number | null | undefined): number | null =>
  value === null || value === undefined || !Number.isFinite(value) ? null : Math.round(value);

const percentiles = (count: Count, values: readonly (number | null)[]): Percentiles =>
  Number(count) === 0 ? { p50: null, p95: null } : { p50: roundMs(values[0]), p95: roundMs(values[1]) };

const messageFigures = (row: MessageRow | undefined): Omit<AnalyticsFigures, "feedback"> =>
  row === undefined
    ? EMPTY_FIGURES
    : {
        messages: {
          total: Number(row.total),
          user: Number(row.role_user),
          assistant: Number(row.role_assistant),
          system: Number(row.role_system),
        },
        assistant_states: {
          streaming: Number(row.state_streaming),
          complete: Number(row.state_complete),
          cancelled: Number(row.state_cancelled),
          error: Number(row.state_error),
        },
        tokens: { input: Number(row.input_tokens), output: Number(row.output_tokens) },
        first_delta_ms: percentiles(row.first_delta_ms_n, row.first_delta_ms_q),
        duration_ms: percentiles(row.duration_ms_n, row.duration_ms_q),
      };

const figures = (messages: MessageRow | undefined, feedback: FeedbackRow | undefined): AnalyticsFigures => ({
  ...messageFigures(messages),
  feedback: { up: Number(feedback?.up ?? 0), down: Number(feedback?.down ?? 0) },
});

export class ClickHouseAnalyticsReader implements AnalyticsReader {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly guard: TierGuard,
    /** ClickHouse stops a query after this long (it would be a 503 anyway: the client gives up). */
    private readonly maxExecutionSeconds: number,
  ) {}

  summarize(query: AnalyticsQuery): Promise<AnalyticsSummary> {
    const from = dayStartSeconds(query.from);
    const to = dayStartSeconds(query.to) + DAY_SECONDS;
    const key = GROUP_KEY[query.groupBy];
    const range = `created_at >= toDateTime(${from}) AND created_at < toDateTime(${to})`;
    const messagesSql = `
      SELECT ${key} AS k,
             count() AS total,
             countIf(role = 'user') AS role_user,
             countIf(role = 'assistant') AS role_assistant,
             countIf(role = 'system') AS role_system,
             countIf(role = 'assistant' AND state = 'streaming') AS state_streaming,
             countIf(role = 'assistant' AND state = 'complete') AS state_complete,
             countIf(role = 'assistant' AND state = 'cancelled') AS state_cancelled,
             countIf(role = 'assistant' AND state = 'error') AS state_error,
             sum(input_tokens) AS input_tokens,
             sum(output_tokens) AS output_tokens,
             ${percentileColumns("first_delta_ms")},
             ${percentileColumns("duration_ms")}
        FROM messages FINAL
       WHERE ${range}
       GROUP BY k WITH TOTALS
       ORDER BY k`;
    const feedbackSql = `
      SELECT ${key} AS k,
             countIf(deleted = 0 AND rating = 'up') AS up,
             countIf(deleted = 0 AND rating = 'down') AS down
        FROM feedback FINAL
       WHERE ${range}
       GROUP BY k WITH TOTALS
       ORDER BY k`;
    return this.guard.run(async () => {
      const [messages, feedback] = await Promise.all([
        this.select<MessageRow>(messagesSql),
        this.select<FeedbackRow>(feedbackSql),
      ]);
      const keyOf = (k: Count): string | null =>
        query.groupBy === "day" ? dayOfNumber(Number(k)) : k === "" ? null : String(k);
      const byKey = new Map<string | null, { m?: MessageRow; f?: FeedbackRow }>();
      for (const m of messages.data) byKey.set(keyOf(m.k), { m });
      for (const f of feedback.data) {
        // Only changes that are not removals count; a group of removals alone is no group.
        if (Number(f.up) + Number(f.down) === 0) continue;
        const key = keyOf(f.k);
        byKey.set(key, { ...byKey.get(key), f });
      }
      const groups: AnalyticsGroup[] = [...byKey.entries()]
        .sort(([a], [b]) => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1))
        .map(([k, { m, f }]) => ({ key: k, ...figures(m, f) }));
      return {
        groups,
        totals: figures(
          messages.data.length > 0 ? messages.totals : undefined,
          feedback.data.length > 0 ? feedback.totals : undefined,
        ),
      };
    });
  }

  private async select<T>(query: string): Promise<{ data: T[]; totals: T | undefined }> {
    const result = await this.client.query({
      query,
      format: "JSON",
      clickhouse_settings: { max_execution_time: this.maxExecutionSeconds },
    });
    const json = await result.json<T>();
    return { data: json.data, totals: json.totals };
  }
}
