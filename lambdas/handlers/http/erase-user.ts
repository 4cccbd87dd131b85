/**
 * DELETE /api/admin/users/{userId} — erases every thread of a user (admin): 202 with the erasure,
 * whose progress GET /api/admin/erasures/{id} reports (docs/erasure.md).
 */
import { erasureReport } from "../../core/erasure-service.ts";
import { parseUserId } from "../../core/validation.ts";
import { erasureService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params }) => {
    const userId = parseUserId(params.userId);
    const erasure = await (await erasureService()).eraseUser(principal, userId);
    const statusUrl = `/api/admin/erasures/${erasure.id}`;
    return {
      status: 202,
      headers: { location: statusUrl },
      body: { ...erasureReport(erasure), erasure_id: erasure.id, status_url: statusUrl },
    };
  },
  { body: "none" },
);
