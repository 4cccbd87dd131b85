/** GET /api/admin/erasures/{erasureId} — an erasure's progress per tier (admins, and whoever asked for it). */
import { parseId } from "../../core/validation.ts";
import { erasureService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params }) => {
    const erasureId = parseId(params.erasureId, "erasureId");
    return { status: 200, body: await (await erasureService()).status(principal, erasureId) };
  },
  { body: "none" },
);
