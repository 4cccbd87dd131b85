/**
 * The one place errors become HTTP responses. AppErrors keep their code and message; a tier that
 * is down (and was not handled by a fallback) is a 503 with Retry-After; anything else is a 500
 * whose body says nothing about the cause (the log has it, under the request id).
 */
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import {
  AppError,
  type ErrorKind,
  isTierUnavailable,
  RateLimitedError,
  ServiceUnavailableError,
} from "../core/errors.ts";
import { DEFAULT_RETRY_AFTER_SECONDS } from "./config.ts";

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
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
}

export const describeFailure = (error: unknown): ErrorBody => {
  if (error instanceof AppError) {
    const retryAfter =
      error instanceof RateLimitedError || error instanceof ServiceUnavailableError
        ? { retryAfterSeconds: error.retryAfterSeconds }
        : {};
    return {
      status: STATUS[error.kind],
      code: error.code,
      message: error.message,
      ...(error.details !== undefined ? { details: error.details } : {}),
      ...retryAfter,
    };
  }
  if (isTierUnavailable(error))
    return {
      status: STATUS.unavailable,
      code: "service_unavailable",
      message: "Temporarily unavailable; retry shortly",
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SECONDS,
    };
  return { status: 500, code: "internal_error", message: "Internal error" };
};

export const errorResponse = (error: unknown, requestId?: string): APIGatewayProxyStructuredResultV2 => {
  const failure = describeFailure(error);
  const headers: Record<string, string> = {};
  if (failure.retryAfterSeconds !== undefined) headers["retry-after"] = String(failure.retryAfterSeconds);
  if (failure.status === 401) headers["www-authenticate"] = 'Bearer realm="chat"';
  return jsonResponse(
    failure.status,
    {
      error: {
        code: failure.code,
        message: failure.message,
        ...(failure.details !== undefined ? { details: failure.details } : {}),
        ...(requestId !== undefined ? { request_id: requestId } : {}),
      },
    },
    headers,
  );
};
