/** unsubscribe {threadId} */
import { parseUnsubscribe } from "../../core/validation.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(async ({ connection, frame, subscriptions }) => {
  const { threadId, requestId } = parseUnsubscribe(frame);
  await subscriptions.unsubscribe(connection, threadId, requestId);
});
