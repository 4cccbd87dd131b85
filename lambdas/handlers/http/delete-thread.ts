/**
 * DELETE /api/threads/{threadId} — the owner erases the thread: 202, gone from PostgreSQL and Redis
 * now (every route answers 404), from ClickHouse when the erasure completes (docs/erasure.md).
 */
import { parseId } from "../../core/validation.ts";
import { erasureService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params }) => {
    const threadId = parseId(params.threadId, "threadId");
    const erasureId = await (await erasureService()).deleteThread(principal, threadId);
    const statusUrl = `/api/admin/erasures/${erasureId}`;
    return {
      status: 202,
      headers: { location: statusUrl },
      body: { thread_id: threadId, erasure_id: erasureId, status_url: statusUrl },
    };
  },
  { body: "none" },
);
