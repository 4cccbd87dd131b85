/**
 * Errors the core raises. Each carries a stable machine-readable `code` and a `kind`; the kind is
 * mapped to an HTTP status in exactly one place (`runtime/http-response.ts`) and to a WebSocket
 * `error` event in `runtime/ws-middleware.ts`.
 */

export type ErrorKind =
  | "bad_request"
  | "invalid"
  | "too_large"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "rate_limited"
  | "unavailable";

export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

export class AppError extends Error {
  override readonly name: string = "AppError";
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly details?: readonly ErrorDetail[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class BadRequestError extends AppError {
  override readonly name = "BadRequestError";
  constructor(code: string, message: string, details?: readonly ErrorDetail[]) {
    super("bad_request", code, message, details);
  }
}

export class ValidationError extends AppError {
  override readonly name = "ValidationError";
  constructor(message: string, details?: readonly ErrorDetail[]) {
    super("invalid", "validation_failed", message, details);
  }
}

export class PayloadTooLargeError extends AppError {
  override readonly name = "PayloadTooLargeError";
  constructor(code: string, message: string) {
    super("too_large", code, message);
  }
}

export class UnauthorizedError extends AppError {
  override readonly name = "UnauthorizedError";
  constructor(message = "A valid bearer token is required", options?: { cause?: unknown }) {
    super("unauthenticated", "unauthorized", message, undefined, options);
  }
}

export class ForbiddenError extends AppError {
  override readonly name = "ForbiddenError";
  constructor(code: string, message: string) {
    super("forbidden", code, message);
  }
}

export class NotFoundError extends AppError {
  override readonly name = "NotFoundError";
  constructor(code: string, message: string) {
    super("not_found", code, message);
  }
}

export class RateLimitedError extends AppError {
  override readonly name = "RateLimitedError";
  constructor(readonly retryAfterSeconds: number) {
    super("rate_limited", "rate_limited", "Too many requests; retry later");
  }
}

/** Neither durable tier could take the message: the client should retry (same client_message_id). */
export class ServiceUnavailableError extends AppError {
  override readonly name = "ServiceUnavailableError";
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super("unavailable", "service_unavailable", message, undefined, options);
  }
}

export const threadNotFound = (): NotFoundError => new NotFoundError("thread_not_found", "Thread not found");

export const messageNotFound = (): NotFoundError =>
  new NotFoundError("message_not_found", "Message not found");

export type Tier = "redis" | "postgres" | "sqs" | "clickhouse" | "websocket";

/**
 * Raised by adapters when a tier cannot be reached in time (connection refused, timeout, circuit
 * open). The core treats it as transient: fail over, or retry later; never as bad data.
 */
export class TierUnavailableError extends Error {
  override readonly name = "TierUnavailableError";
  constructor(
    readonly tier: Tier,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${tier} unavailable: ${message}`, options);
  }
}

export const isTierUnavailable = (error: unknown): error is TierUnavailableError =>
  error instanceof TierUnavailableError;

export const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/**
 * For `.catch()`: a tier outage becomes a retryable 503 with `message`; any other error (a bug, a
 * constraint) propagates unchanged and surfaces as a 500, rather than inviting endless retries.
 */
export const unavailableAs =
  (message: string, retryAfterSeconds: number) =>
  (error: unknown): never => {
    if (isTierUnavailable(error))
      throw new ServiceUnavailableError(message, retryAfterSeconds, { cause: error });
    throw error;
  };
