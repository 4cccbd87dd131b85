/**
 * The one place errors become HTTP responses (and WebSocket error frames). AppErrors keep their
 * code and message; a tier that is down (and was not handled by a fallback) is a 503; anything
 * else is a 500 whose body says nothing about the cause (the log has it, under the request id).
 * Retry-After is the edge's business: a 503 gets the configured delay, a 429 the limiter's, a 409
 * for a try still in flight one second.
 */
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import {
  AppError,
  type ErrorKind,
  isTierUnavailable,
  OverloadedError,
  RateLimitedError,
  ServiceUnavailableError,
} from "../core/errors.ts";

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  invalid: 422,
  rate_limited: 429,
  unavailable: 503,
};

export const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
} as const;

export const jsonResponse = (
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 => ({
  statusCode: status,
  headers: { ...JSON_HEADERS, ...headers },
  body: JSON.stringify(body),
});

export interface ErrorBody {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly details?: readonly { path: string; message: string }[];
  readonly retryAfterSeconds?: number;
  /** A 503 whose message may have been stored: the key to retry with. */
  readonly clientMessageId?: string;
}

/** Seconds a client waits before retrying a try that is still in flight. */
const IN_PROGRESS_RETRY_AFTER_SECONDS = 1;

export const describeFailure = (error: unknown, unavailableRetryAfterSeconds: number): ErrorBody => {
  if (error instanceof AppError) {
    const retryAfterSeconds =
      error instanceof RateLimitedError || error instanceof OverloadedError
        ? error.retryAfterSeconds
        : error.kind === "unavailable"
          ? unavailableRetryAfterSeconds
          : error.code === "request_in_progress"
            ? IN_PROGRESS_RETRY_AFTER_SECONDS
            : undefined;
    const clientMessageId = error instanceof ServiceUnavailableError ? error.clientMessageId : undefined;
    return {
      status: STATUS[error.kind],
      code: error.code,
      message: error.message,
      ...(error.details !== undefined ? { details: error.details } : {}),
      ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      ...(clientMessageId !== undefined ? { clientMessageId } : {}),
    };
  }
  if (isTierUnavailable(error))
    return {
      status: STATUS.unavailable,
      code: "service_unavailable",
      message: "Temporarily unavailable; retry shortly",
      retryAfterSeconds: unavailableRetryAfterSeconds,
    };
  return { status: 500, code: "internal_error", message: "Internal error" };
};

/** The error body shared by HTTP responses and WebSocket error frames. */
export const errorBody = (failure: ErrorBody, requestId?: string): Record<string, unknown> => ({
  code: failure.code,
  message: failure.message,
  ...(failure.details !== undefined ? { details: failure.details } : {}),
  ...(failure.clientMessageId !== undefined ? { client_message_id: failure.clientMessageId } : {}),
  ...(failure.retryAfterSeconds !== undefined ? { retry_after_seconds: failure.retryAfterSeconds } : {}),
  ...(requestId !== undefined ? { request_id: requestId } : {}),
});

export const errorResponse = (
  error: unknown,
  options: { requestId?: string; unavailableRetryAfterSeconds: number },
): APIGatewayProxyStructuredResultV2 => {
  const failure = describeFailure(error, options.unavailableRetryAfterSeconds);
  const headers: Record<string, string> = {};
  if (failure.retryAfterSeconds !== undefined) headers["retry-after"] = String(failure.retryAfterSeconds);
  if (failure.status === 401) headers["www-authenticate"] = 'Bearer realm="chat"';
  return jsonResponse(failure.status, { error: errorBody(failure, options.requestId) }, headers);
};
