/** $default route: any path or method outside the contract gets a JSON 404 with a stable code. */
import { NotFoundError } from "../../core/errors.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async () => {
    throw new NotFoundError("route_not_found", "No such route");
  },
  { body: "none" },
);
