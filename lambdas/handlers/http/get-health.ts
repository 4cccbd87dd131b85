/**
 * GET /api/health — for machines (load balancers, Route 53 health checks, uptime monitors) without
 * a token: the overall status only, 503 when no durable tier can take messages. With an admin's
 * token: each tier's status and latency as well. Tiers are probed at most every few seconds.
 */
import { isAdmin } from "../../core/model.ts";
import { health } from "../../runtime/analytics-container.ts";
import { publicHttpHandler } from "../../runtime/http-middleware.ts";
import { logger } from "../../runtime/telemetry.ts";

export const handler = publicHttpHandler(
  async ({ principal }) => {
    const { errors, ...report } = await health();
    if (Object.keys(errors).length > 0) logger.warn("health check found tiers down", { errors });
    const status = report.status === "down" ? 503 : 200;
    const body = principal !== undefined && isAdmin(principal) ? report : { status: report.status };
    return { status, body };
  },
  { body: "none" },
);
