/** GET /api/threads/{threadId}/messages — history pages in seq order, served from Redis when it can. */
import { toWire } from "../../core/model.ts";
import { parseHistoryQuery, parseId } from "../../core/validation.ts";
import { historyReader, limits } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { countMetric } from "../../runtime/telemetry.ts";

export const handler = httpHandler(
  async ({ principal, params, query }) => {
    const threadId = parseId(params.threadId, "threadId");
    const page = parseHistoryQuery(query, limits());
    const { value, source } = await (await historyReader()).history(principal, threadId, page);
    countMetric(source === "cache" ? Metric.CacheHits : Metric.CacheMisses);
    return {
      status: 200,
      headers: { "x-served-from": source },
      body: { ...value, messages: value.messages.map(toWire) },
    };
  },
  { body: "none" },
);
