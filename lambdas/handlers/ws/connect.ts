/** $connect — verifies `?token=<JWT>` and registers the connection; a bad token refuses it (401). */
import { subscriptionService } from "../../runtime/container.ts";
import { wsConnectHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsConnectHandler(async (connectionId, event) => {
  await (await subscriptionService()).connect(connectionId, event.queryStringParameters?.token);
});
