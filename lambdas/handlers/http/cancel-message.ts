/**
 * POST /api/messages/{messageId}/cancel — stops a streamed reply (the thread's owner, or a
 * service): `cancelled`, with its content as it stands; the agent's next append gets 409.
 */
import { toWire } from "../../core/model.ts";
import { parseCancel, parseId } from "../../core/validation.ts";
import { streamService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, body }) => {
    const messageId = parseId(params.messageId, "messageId");
    const { reason } = parseCancel(body);
    const final = await (await streamService()).end(principal, messageId, {
      state: "cancelled",
      finishReason: "cancelled",
      ...(reason !== undefined ? { error: { code: "cancelled", message: reason } } : {}),
    });
    return { status: 200, body: toWire(final) };
  },
  { body: "optional" },
);
