/**
 * GET /api/threads — the caller's threads, newest first, keyset-paginated; `?agent=<name>` (service
 * principals only): the threads whose `metadata.agent` is that name, of any owner.
 */
import { toWireThread } from "../../core/model.ts";
import { parseThreadListQuery } from "../../core/validation.ts";
import { limits, threadService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, query }) => {
    const page = await (await threadService()).list(principal, parseThreadListQuery(query, limits()));
    return { status: 200, body: { ...page, threads: page.threads.map(toWireThread) } };
  },
  { body: "none" },
);
