/**
 * sendMessage {threadId, message, metadata?, client_message_id?} — the same accept path as the
 * HTTP route. The sender gets the accepted message back (with its request_id); the thread's other
 * subscribers get it through the fan-out.
 */
import { messageCreatedFrame } from "../../core/events.ts";
import { parseWsSendMessage } from "../../core/validation.ts";
import { recordAccept } from "../../runtime/accept-telemetry.ts";
import { limits, messageService, notifier } from "../../runtime/container.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(async ({ connection, frame }) => {
  const { threadId, requestId, input } = parseWsSendMessage(frame, limits());
  const service = await messageService();
  const result = await recordAccept(() =>
    service.accept({
      principal: connection.principal,
      threadId,
      input,
      originConnectionId: connection.connectionId,
    }),
  );
  await notifier().send(
    connection.connectionId,
    messageCreatedFrame(result.message, {
      ack: true,
      durability: result.durability,
      replayed: result.replayed,
      ...(requestId !== undefined ? { request_id: requestId } : {}),
    }),
  );
});
