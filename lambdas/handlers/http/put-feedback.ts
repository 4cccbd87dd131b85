/** PUT /api/messages/{messageId}/feedback — the thread's owner rates an assistant reply (replaces). */
import { feedbackWire } from "../../core/feedback-service.ts";
import { parseFeedback, parseId } from "../../core/validation.ts";
import { feedbackService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, body }) => {
    const messageId = parseId(params.messageId, "messageId");
    const input = parseFeedback(body);
    const feedback = await (await feedbackService()).put(principal, messageId, input);
    return { status: 200, body: feedbackWire(feedback) };
  },
  { body: "required" },
);
