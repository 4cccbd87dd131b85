/** POST /api/messages/{messageId}/deltas — one delta of a streamed reply (service principals). */
import { parseDelta, parseId } from "../../core/validation.ts";
import { streamService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, body }) => {
    const messageId = parseId(params.messageId, "messageId");
    const delta = parseDelta(body);
    const outcome = await (await streamService()).append(principal, messageId, delta);
    return {
      status: 202,
      body: {
        message_id: outcome.messageId,
        thread_id: outcome.threadId,
        index: outcome.index,
        duplicate: outcome.duplicate,
      },
    };
  },
  { body: "required", shed: true },
);
