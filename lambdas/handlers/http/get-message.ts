/** GET /api/messages/{messageId} — Redis first, then PostgreSQL. */
import { toWire } from "../../core/model.ts";
import { parseId } from "../../core/validation.ts";
import { historyReader } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";
import { Metric } from "../../runtime/metric-names.ts";
import { countMetric } from "../../runtime/telemetry.ts";

export const handler = httpHandler(
  async ({ principal, params }) => {
    const messageId = parseId(params.messageId, "messageId");
    const { value, source } = await (await historyReader()).message(principal, messageId);
    countMetric(source === "cache" ? Metric.CacheHits : Metric.CacheMisses);
    return { status: 200, headers: { "x-served-from": source }, body: toWire(value) };
  },
  { body: "none" },
);
