/** GET /api/admin/analytics?from&to&group_by — per day or model, from ClickHouse (admin role). */

import { httpHandler } from "../../runtime/http-middleware.ts";
import { analyticsService } from "../../runtime/insights-container.ts";

export const handler = httpHandler(
  async ({ principal, query }) => ({
    status: 200,
    body: await (await analyticsService()).report(principal, query),
  }),
  { body: "none" },
);
