/** DELETE /api/messages/{messageId}/feedback — removes the caller's rating; 204 whether or not there was one. */
import { parseId } from "../../core/validation.ts";
import { feedbackService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params }) => {
    const messageId = parseId(params.messageId, "messageId");
    await (await feedbackService()).remove(principal, messageId);
    return { status: 204, body: undefined };
  },
  { body: "none" },
);
