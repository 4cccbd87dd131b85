/**
 * The admin analytics read (GET /api/admin/analytics): per day or per model, over the messages
 * created in a range of days (UTC), from ClickHouse. Admins only, as every admin route.
 */
import { ForbiddenError, unavailableAs } from "./errors.ts";
import { isAdmin, type Principal } from "./model.ts";
import type {
  AnalyticsFigures,
  AnalyticsGroup,
  AnalyticsQuery,
  AnalyticsReader,
  AnalyticsSummary,
  Clock,
} from "./ports.ts";
import { parseAnalyticsQuery } from "./validation.ts";

export const EMPTY_FIGURES: AnalyticsFigures = {
  messages: { total: 0, user: 0, assistant: 0, system: 0 },
  assistant_states: { streaming: 0, complete: 0, cancelled: 0, error: 0 },
  tokens: { input: 0, output: 0 },
  feedback: { up: 0, down: 0 },
  first_delta_ms: { p50: null, p95: null },
  duration_ms: { p50: null, p95: null },
};

const DAY_MS = 86_400_000;

/** Every day from `from` to `to` (YYYY-MM-DD, UTC), in order. */
export const daysOf = (from: string, to: string): string[] => {
  const days: string[] = [];
  for (let ms = Date.parse(`${from}T00:00:00Z`); ms <= Date.parse(`${to}T00:00:00Z`); ms += DAY_MS) {
    days.push(new Date(ms).toISOString().slice(0, 10));
  }
  return days;
};

export interface AnalyticsReport extends AnalyticsSummary {
  readonly from: string;
  readonly to: string;
  readonly group_by: AnalyticsQuery["groupBy"];
}

export class AnalyticsService {
  constructor(private readonly deps: { readonly reader: AnalyticsReader; readonly clock: Clock }) {}

  /** `query`: the request's query string, checked here (after the role: a non-admin learns nothing). */
  async report(
    principal: Principal,
    query: Readonly<Record<string, string | undefined>>,
  ): Promise<AnalyticsReport> {
    if (!isAdmin(principal)) throw new ForbiddenError("admin_required", "This route needs the admin role");
    const q = parseAnalyticsQuery(query, this.deps.clock.now());
    const summary = await this.deps.reader.summarize(q).catch(unavailableAs("Analytics store unavailable"));
    return {
      from: q.from,
      to: q.to,
      group_by: q.groupBy,
      ...summary,
      groups: this.complete(q, summary.groups),
    };
  }

  /** Per day, every day of the range is listed (a day without messages has zeros). */
  private complete(q: AnalyticsQuery, groups: readonly AnalyticsGroup[]): AnalyticsGroup[] {
    if (q.groupBy !== "day") return [...groups];
    const byDay = new Map(groups.map((g) => [g.key, g] as const));
    return daysOf(q.from, q.to).map((day) => byDay.get(day) ?? { key: day, ...EMPTY_FIGURES });
  }
}
