/** ping — answers pong (keeps the connection from the 10-minute idle timeout). */
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(async ({ connection, requestId, subscriptions }) => {
  await subscriptions.ping(connection.connectionId, requestId);
});
