/**
 * appendDelta {messageId, index, text} — the same as POST /api/messages/{id}/deltas, for agents
 * that hold a connection. The agent gets `delta.accepted` (with its request_id); the thread's
 * subscribers get `message.delta`.
 */
import { eventFrame } from "../../core/events.ts";
import { parseWsAppendDelta } from "../../core/validation.ts";
import { notifier, streamService } from "../../runtime/container.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(
  async ({ connection, frame }) => {
    const { messageId, requestId, delta } = parseWsAppendDelta(frame);
    const outcome = await (await streamService()).append(
      connection.principal,
      messageId,
      delta,
      connection.connectionId,
    );
    await notifier().send(
      connection.connectionId,
      eventFrame(
        "delta.accepted",
        {
          message_id: outcome.messageId,
          thread_id: outcome.threadId,
          index: outcome.index,
          duplicate: outcome.duplicate,
        },
        requestId,
      ),
    );
  },
  { shed: true },
);
