/**
 * PATCH /api/threads/{threadId} — rename, re-describe (metadata, replaced whole) or archive a
 * thread; subscribers get `thread.updated`. A service principal may set the title and metadata.
 */
import { toWireThread } from "../../core/model.ts";
import { parseId, parseThreadChange } from "../../core/validation.ts";
import { limits, threadService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, body }) => {
    const threadId = parseId(params.threadId, "threadId");
    const change = parseThreadChange(body, limits());
    return {
      status: 200,
      body: toWireThread(await (await threadService()).update(principal, threadId, change)),
    };
  },
  { body: "required" },
);
