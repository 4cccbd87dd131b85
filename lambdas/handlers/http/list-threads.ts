/**
 * GET /api/threads — the caller's threads, newest first, keyset-paginated; `?agent=<name>` (service
 * principals only): the threads whose `metadata.agent` is that name, of any owner.
 */
import { parseThreadListQuery } from "../../core/validation.ts";
import { limits, threadService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, query }) => ({
    status: 200,
    body: await (await threadService()).list(principal, parseThreadListQuery(query, limits())),
  }),
  { body: "none" },
);
