/** $default — any other action gets an `error` frame. */
import { BadRequestError } from "../../core/errors.ts";
import { wsRouteHandler } from "../../runtime/ws-middleware.ts";

export const handler = wsRouteHandler(async ({ frame }) => {
  const action = typeof frame.action === "string" ? frame.action.slice(0, 64) : undefined;
  throw new BadRequestError(
    "unknown_action",
    action === undefined ? "frame has no action" : `unknown action: ${action}`,
  );
});
