/**
 * POST /api/messages/{messageId}/complete — ends a streamed reply (service principals):
 * `complete`, or `error` with `finish_reason: "error"`; answers the final message.
 */
import { PayloadTooLargeError } from "../../core/errors.ts";
import { toWire } from "../../core/model.ts";
import { queueBytes } from "../../core/queue-body.ts";
import { parseEnding, parseId } from "../../core/validation.ts";
import { limits, streamOptions, streamService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, body }) => {
    const messageId = parseId(params.messageId, "messageId");
    const ending = parseEnding(body, limits());
    const { maxBytes } = streamOptions();
    if (ending.content !== undefined && queueBytes(ending.content) > maxBytes) {
      throw new PayloadTooLargeError("stream_too_large", `a reply may hold ${maxBytes} bytes`);
    }
    const final = await (await streamService()).end(principal, messageId, ending);
    return { status: 200, body: toWire(final) };
  },
  { body: "required" },
);
