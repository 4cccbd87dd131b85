/** GET /api/threads/{threadId} — one thread with its message count. */
import { toWireThread } from "../../core/model.ts";
import { parseId } from "../../core/validation.ts";
import { threadService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params }) => ({
    status: 200,
    body: toWireThread(await (await threadService()).get(principal, parseId(params.threadId, "threadId"))),
  }),
  { body: "none" },
);
