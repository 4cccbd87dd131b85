/** subscribe {threadId, sinceSeq?} — replays what was missed since sinceSeq, then live messages. */
import { parseSubscribe } from "../../core/validation.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(async ({ connection, frame, subscriptions }) => {
  const { threadId, sinceSeq, requestId } = parseSubscribe(frame);
  await subscriptions.subscribe(connection, threadId, sinceSeq, requestId);
});
