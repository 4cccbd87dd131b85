/**
 * The middleware stack of every HTTP API function, built by one factory: structured logging with
 * the request id, EMF metrics flushing, one error-to-response contract, bearer-token
 * authentication and a size-limited JSON body parser. Route functions get a typed request.
 */
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import {
  type AppError,
  BadRequestError,
  OverloadedError,
  PayloadTooLargeError,
  UnauthorizedError,
} from "../core/errors.ts";
import type { Principal } from "../core/model.ts";
import { admit } from "./admission.ts";
import { config } from "./config.ts";
import { admission, loadMonitor, tokenVerifier } from "./container.ts";
import { errorResponse, jsonResponse } from "./http-response.ts";
import { logger, metrics, shed } from "./telemetry.ts";

export interface HttpRequest {
  readonly principal: Principal;
  readonly body: unknown;
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly requestId: string;
}

export interface HttpResult {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
  /** A body sent as it is (not JSON): `headers` then name its content type. */
  readonly raw?: boolean;
}

export type HttpRoute = (request: HttpRequest) => Promise<HttpResult>;

export interface HttpRouteOptions {
  /** "required": the route reads a JSON body; "optional": an empty body means {}; "none": ignored. */
  readonly body: "required" | "optional" | "none";
  /**
   * The route accepts work per message (an accept, a delta): refused with `503 overloaded` before
   * anything else runs when this process is overloaded (runtime/admission.ts).
   */
  readonly shed?: boolean;
}

const bearerToken = (header: string | undefined): string => {
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match?.[1] === undefined) throw new UnauthorizedError();
  return match[1];
};

const readBody = (event: APIGatewayProxyEventV2, mode: HttpRouteOptions["body"]): unknown => {
  if (mode === "none") return undefined;
  const raw =
    event.body === undefined || event.body === ""
      ? ""
      : event.isBase64Encoded
        ? Buffer.from(event.body, "base64").toString("utf8")
        : event.body;
  if (Buffer.byteLength(raw, "utf8") > config().MAX_BODY_BYTES) {
    throw new PayloadTooLargeError(
      "payload_too_large",
      `request body exceeds ${config().MAX_BODY_BYTES} bytes`,
    );
  }
  if (raw.trim() === "") {
    if (mode === "optional") return {};
    throw new BadRequestError("malformed_json", "request body must be a JSON object");
  }
  // The body is JSON whatever Content-Type says (curl -d sends form-urlencoded): existing clients vary.
  try {
    return JSON.parse(raw);
  } catch {
    throw new BadRequestError("malformed_json", "request body is not valid JSON");
  }
};

const lowerCaseKeys = (headers: APIGatewayProxyEventV2["headers"]): Record<string, string | undefined> =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));

/** What the middlewares below add to the API Gateway event before the route runs. */
type HttpEvent = APIGatewayProxyEventV2 & {
  principal?: Principal;
  parsedBody?: unknown;
  /** Ends this request's share of the process's load (admission.ts). */
  endLoad?: () => void;
};
type HttpMiddleware = middy.MiddlewareObj<HttpEvent, APIGatewayProxyStructuredResultV2>;

/** Errors → responses; 5xx are logged with their cause, 4xx only with their code. */
const httpErrors = (): HttpMiddleware => ({
  onError: (request) => {
    const { error } = request;
    const response = errorResponse(error, {
      requestId: request.event.requestContext.requestId,
      unavailableRetryAfterSeconds: config().RETRY_AFTER_SECONDS,
    });
    if (error instanceof OverloadedError) {
      shed(error);
    } else if ((response.statusCode ?? 500) >= 500) {
      logger.error("request failed", { error: error as Error, status: response.statusCode });
    } else {
      logger.info("request rejected", { status: response.statusCode, code: (error as AppError).code });
    }
    request.response = response;
  },
});

/** `optional`: a request without an Authorization header goes on anonymously; a bad token is still 401. */
const authenticate = (mode: "required" | "optional"): HttpMiddleware => ({
  before: async (request) => {
    request.event.headers = lowerCaseKeys(request.event.headers) as APIGatewayProxyEventV2["headers"];
    const header = request.event.headers.authorization;
    if (mode === "optional" && header === undefined) return;
    request.event.principal = await tokenVerifier().verify(bearerToken(header));
    logger.appendKeys({ userId: request.event.principal.userId });
  },
});

/** Counts the request in this process's load; sheds it first when the route asks for that. */
const admissionControl = (shed: boolean): HttpMiddleware => {
  const end: HttpMiddleware["after"] = (request) => request.event.endLoad?.();
  return {
    before: (request) => {
      request.event.endLoad = admit(loadMonitor(), shed ? admission() : undefined);
    },
    after: end,
    onError: end,
  };
};

const jsonBody = (mode: HttpRouteOptions["body"]): HttpMiddleware => ({
  before: (request) => {
    request.event.parsedBody = readBody(request.event, mode);
  },
});

const stack = (options: HttpRouteOptions, auth: "required" | "optional") =>
  middy<HttpEvent, APIGatewayProxyStructuredResultV2>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .use({
      before: (request) => {
        logger.appendKeys({
          requestId: request.event.requestContext.requestId,
          route: request.event.routeKey,
        });
      },
    })
    .use(httpErrors())
    .use(admissionControl(options.shed === true))
    .use(authenticate(auth))
    .use(jsonBody(options.body));

const requestOf = (event: HttpEvent) => ({
  body: event.parsedBody,
  params: event.pathParameters ?? {},
  query: event.queryStringParameters ?? {},
  headers: event.headers,
  requestId: event.requestContext.requestId,
});

export const httpHandler = (route: HttpRoute, options: HttpRouteOptions) =>
  stack(options, "required").handler(async (event) => {
    if (event.principal === undefined) throw new UnauthorizedError();
    const result = await route({ principal: event.principal, ...requestOf(event) });
    return result.raw === true
      ? {
          statusCode: result.status,
          headers: { "cache-control": "no-store", ...result.headers },
          body: String(result.body),
        }
      : jsonResponse(result.status, result.body, result.headers);
  });

/** A route callers may use without a token (the gateway attaches no authorizer to it either). */
export type PublicHttpRoute = (
  request: Omit<HttpRequest, "principal"> & { readonly principal: Principal | undefined },
) => Promise<HttpResult>;

export const publicHttpHandler = (route: PublicHttpRoute, options: HttpRouteOptions) =>
  stack(options, "optional").handler(async (event) => {
    const result = await route({ principal: event.principal, ...requestOf(event) });
    return jsonResponse(result.status, result.body, result.headers);
  });
