/**
 * subscribe {threadId, epoch?, pos?, sinceSeq?} — follows the thread; replays what was missed
 * after the stream position (or, when it cannot be replayed, after the settled seq), then live.
 */
import { parseSubscribe } from "../../core/validation.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(async ({ connection, frame, subscriptions }) => {
  const { threadId, position, sinceSeq, requestId } = parseSubscribe(frame);
  await subscriptions.subscribe(
    connection,
    threadId,
    { ...(position !== undefined ? { position } : {}), ...(sinceSeq !== undefined ? { sinceSeq } : {}) },
    requestId,
  );
});
