/**
 * The middleware stack of the WebSocket API functions. `$connect` verifies the token from the
 * query string (browsers cannot set headers) and refuses the upgrade with 401; the other routes
 * look up the connection's principal, and report any problem to the client as an `error` frame
 * with the same codes as the HTTP API (and a 200 to API Gateway, which has nothing to relay).
 */
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { APIGatewayProxyResultV2, APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { BadRequestError, OverloadedError, PayloadTooLargeError } from "../core/errors.ts";
import { errorFrame } from "../core/events.ts";
import type { Connection } from "../core/ports.ts";
import type { SubscriptionService } from "../core/subscription-service.ts";
import { admit } from "./admission.ts";
import { config } from "./config.ts";
import { admission, loadMonitor, subscriptionService } from "./container.ts";
import { describeFailure, errorBody, errorResponse } from "./http-response.ts";
import { logger, metrics, shed } from "./telemetry.ts";

/** The $connect event carries the query string, which the v2 WebSocket type leaves out. */
export type WsConnectEvent = APIGatewayProxyWebsocketEventV2 & {
  queryStringParameters?: Record<string, string | undefined>;
  headers?: Record<string, string | undefined>;
};

export interface WsRequest {
  readonly connection: Connection;
  readonly frame: Record<string, unknown>;
  readonly requestId: string | undefined;
  readonly subscriptions: SubscriptionService;
}

export type WsRoute = (request: WsRequest) => Promise<void>;

const base = <E extends APIGatewayProxyWebsocketEventV2>() =>
  middy<E, APIGatewayProxyResultV2>()
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics))
    .use({
      before: (request) => {
        const { connectionId, routeKey, requestId } = request.event.requestContext;
        logger.appendKeys({ connectionId, route: routeKey, requestId });
      },
    });

/** API Gateway takes WebSocket messages of up to 128 KB; frames are refused well below that. */
const MAX_FRAME_BYTES = 64 * 1024;

const parseFrame = (body: string | undefined): Record<string, unknown> => {
  const raw = body ?? "";
  const limit = Math.min(config().MAX_BODY_BYTES, MAX_FRAME_BYTES);
  if (Buffer.byteLength(raw, "utf8") > limit) {
    throw new PayloadTooLargeError("payload_too_large", `frame exceeds ${limit} bytes`);
  }
  let frame: unknown;
  try {
    frame = JSON.parse(raw);
  } catch {
    throw new BadRequestError("malformed_json", "frame is not valid JSON");
  }
  if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
    throw new BadRequestError("malformed_json", "frame must be a JSON object");
  }
  return frame as Record<string, unknown>;
};

/** `shed`: the route accepts work per message, refused first when the process is overloaded (admission.ts). */
export const wsRouteHandler = (route: WsRoute, options: { shed?: boolean } = {}) =>
  base<APIGatewayProxyWebsocketEventV2>().handler(async (event) => {
    const { connectionId } = event.requestContext;
    let endLoad: (() => void) | undefined;
    const subscriptions = await subscriptionService();
    let requestId: string | undefined;
    try {
      const frame = parseFrame(event.body);
      if (typeof frame.request_id === "string" && frame.request_id.length <= 128)
        requestId = frame.request_id;
      endLoad = admit(loadMonitor(), options.shed === true ? admission() : undefined);
      const connection = await subscriptions.connection(connectionId);
      logger.appendKeys({ userId: connection.principal.userId });
      await route({ connection, frame, requestId, subscriptions });
    } catch (error) {
      const failure = describeFailure(error, config().RETRY_AFTER_SECONDS);
      if (error instanceof OverloadedError) shed(error);
      else if (failure.status >= 500) logger.error("websocket request failed", { error: error as Error });
      else logger.info("websocket request rejected", { code: failure.code });
      await subscriptions.reject(connectionId, errorFrame(errorBody(failure, requestId)));
      if (failure.code === "token_expired") await subscriptions.close(connectionId);
    } finally {
      endLoad?.();
    }
    return { statusCode: 200 };
  });

export const wsConnectHandler = (connect: (connectionId: string, event: WsConnectEvent) => Promise<void>) =>
  base<WsConnectEvent>().handler(async (event) => {
    try {
      await connect(event.requestContext.connectionId, event);
      return { statusCode: 200 };
    } catch (error) {
      const response = errorResponse(error, {
        requestId: event.requestContext.requestId,
        unavailableRetryAfterSeconds: config().RETRY_AFTER_SECONDS,
      });
      if ((response.statusCode ?? 500) >= 500)
        logger.error("websocket connect failed", { error: error as Error });
      return response;
    }
  });
