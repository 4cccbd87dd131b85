/** GET /api/threads/{threadId}/usage — the thread's totals from PostgreSQL (owner, or a service). */
import { parseId } from "../../core/validation.ts";
import { usageService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params }) => {
    const threadId = parseId(params.threadId, "threadId");
    return { status: 200, body: await (await usageService()).threadUsage(principal, threadId) };
  },
  { body: "none" },
);
