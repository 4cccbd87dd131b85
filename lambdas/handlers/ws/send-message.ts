/**
 * sendMessage {threadId, message, metadata?, client_message_id?} — the same accept path as the
 * HTTP route. The sender gets the accepted message back (with its request_id); the thread's other
 * subscribers get it through the fan-out.
 */
import { describeError } from "../../core/errors.ts";
import { messageCreatedFrame } from "../../core/events.ts";
import { parseWsSendMessage } from "../../core/validation.ts";
import { recordAccept } from "../../runtime/accept-telemetry.ts";
import { acceptor, limits, notifier, streamService } from "../../runtime/container.ts";
import { logger } from "../../runtime/telemetry.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(
  async ({ connection, frame }) => {
    const { threadId, requestId, input } = parseWsSendMessage(frame, limits());
    const service = await acceptor();
    const result = await recordAccept(() =>
      service.accept({
        principal: connection.principal,
        threadId,
        input,
        originConnectionId: connection.connectionId,
      }),
    );
    if (result.message.state === "streaming") await (await streamService()).opened(result.message, null);
    // The message is accepted whatever happens to the acknowledgement: a failed ack must not turn
    // into an error frame (the client would think it failed). A client that missed the ack retries
    // with the same client_message_id, or catches up with subscribe {sinceSeq}.
    await notifier()
      .send(
        connection.connectionId,
        messageCreatedFrame(result.message, {
          ack: true,
          // The sender's copy of the event: the same position the other subscribers get.
          ...(result.position ?? {}),
          durability: result.durability,
          cache: result.cache,
          replayed: result.replayed,
          ...(requestId !== undefined ? { request_id: requestId } : {}),
        }),
      )
      .catch((error: unknown) =>
        logger.warn("sendMessage acknowledgement not delivered", {
          messageId: result.message.id,
          error: describeError(error),
        }),
      );
  },
  { shed: true },
);
