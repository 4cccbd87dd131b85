/** GET /api/health — each tier's status and latency; 503 when no durable tier can take messages. */
import { health } from "../../runtime/analytics-container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";
import { logger } from "../../runtime/telemetry.ts";

export const handler = httpHandler(
  async () => {
    const { errors, ...report } = await health();
    if (Object.keys(errors).length > 0) logger.warn("health check found tiers down", { errors });
    return { status: report.status === "down" ? 503 : 200, body: report };
  },
  { body: "none" },
);
