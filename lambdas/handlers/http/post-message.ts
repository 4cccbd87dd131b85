/** POST /api/threads/{threadId}/messages — where a message is accepted. */
import { toWire } from "../../core/model.ts";
import { parseId, parsePostMessage } from "../../core/validation.ts";
import { recordAccept, serverTiming } from "../../runtime/accept-telemetry.ts";
import { acceptor, limits, streamService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, body, headers }) => {
    const threadId = parseId(params.threadId, "threadId");
    const input = parsePostMessage(body, limits(), headers["idempotency-key"]);
    const service = await acceptor();
    const result = await recordAccept(() => service.accept({ principal, threadId, input }));
    if (result.message.state === "streaming") await (await streamService()).opened(result.message, null);
    return {
      status: 201,
      headers: {
        "server-timing": serverTiming(result.timings),
        ...(result.replayed ? { "idempotent-replayed": "true" } : {}),
      },
      body: {
        ...toWire(result.message),
        status: "accepted",
        durability: result.durability,
        degraded: result.degraded,
        cache: result.cache,
        replayed: result.replayed,
        delivered: result.delivery.sent,
      },
    };
  },
  { body: "required", shed: true },
);
