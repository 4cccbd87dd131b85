/** POST /api/threads */
import { toWireThread } from "../../core/model.ts";
import { parseCreateThread } from "../../core/validation.ts";
import { limits, threadService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, body }) => {
    const thread = await (await threadService()).create(principal, parseCreateThread(body, limits()));
    return { status: 201, body: { ...toWireThread(thread), message_count: 0 } };
  },
  { body: "optional" },
);
