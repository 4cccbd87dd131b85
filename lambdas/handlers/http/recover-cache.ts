/** POST /api/admin/recover-redis-cache — re-warm a thread's cache from PostgreSQL (admin claim). */
import { parseRecoverCache } from "../../core/validation.ts";
import { threadAccess } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, body }) => {
    const { threadId } = parseRecoverCache(body);
    const { backfilled } = await (await threadAccess()).recover(principal, threadId);
    return {
      status: 200,
      body: { thread_id: threadId, backfilled_messages: backfilled, recovery_success: true },
    };
  },
  { body: "required" },
);
