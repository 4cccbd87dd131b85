/** $disconnect — forgets the connection and its subscriptions. */
import { subscriptionService } from "../../runtime/container.ts";
import { wsConnectHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsConnectHandler(async (connectionId) => {
  await (await subscriptionService()).disconnect(connectionId);
});
