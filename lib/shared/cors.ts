/**
 * CORS of the HTTP API: the one definition API Gateway (lib/constructs/http-api.ts) and the built-in
 * local stack (scripts/local-stack/http-gateway.ts) both apply. Bearer tokens travel in the
 * Authorization header, never in cookies, so credentials are not allowed.
 */
import { HTTP_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { Problems } from "./problems.ts";

/** Request headers a browser may send. */
export const CORS_ALLOW_HEADERS: readonly string[] = ["authorization", "content-type", "idempotency-key"];

/** Response headers a browser script may read (besides the CORS-safelisted ones). */
export const CORS_EXPOSE_HEADERS: readonly string[] = ["server-timing", "idempotent-replayed", "retry-after"];

/** Every method of the catalog's routes. */
export const CORS_ALLOW_METHODS: readonly string[] = [
  ...new Set(HTTP_FUNCTIONS.map((f) => f.routeKey.split(" ")[0] ?? "").filter((m) => /^[A-Z]+$/.test(m))),
].sort();

/** "*" alone, or origins as browsers send them: scheme://host[:port], no path. */
export const validateOrigins = (origins: readonly string[]): readonly string[] => {
  const problems = new Problems();
  if (origins.includes("*")) {
    problems.check(origins.length === 1, 'an allowed origin "*" must be the only one');
    return problems.list;
  }
  for (const origin of origins) {
    let ok = false;
    try {
      const url = new URL(origin);
      ok = ["http:", "https:"].includes(url.protocol) && url.origin === origin;
    } catch {
      ok = false;
    }
    problems.check(ok, `"${origin}" is not an origin (scheme://host[:port], no path or trailing slash)`);
  }
  problems.check(new Set(origins).size === origins.length, "allowed origins must not repeat");
  return problems.list;
};

/** Whether `origin` (a request's Origin header) is allowed. */
export const originAllowed = (origin: string, allowed: readonly string[]): boolean =>
  allowed.includes("*") || allowed.includes(origin);
