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
  | "conflict"
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

/** The request conflicts with the state of the resource (e.g. an idempotent try still in flight). */
export class ConflictError extends AppError {
  override readonly name = "ConflictError";
  constructor(code: string, message: string) {
    super("conflict", code, message);
  }
}

/** Another try with the same client_message_id is still being accepted: retry shortly. */
export const requestInProgress = (): ConflictError =>
  new ConflictError(
    "request_in_progress",
    "A request with this client_message_id is still in progress; retry shortly",
  );

export class RateLimitedError extends AppError {
  override readonly name = "RateLimitedError";
  constructor(readonly retryAfterSeconds: number) {
    super("rate_limited", "rate_limited", "Too many requests; retry later");
  }
}

/**
 * This process is too busy to take the request (too many in flight, or its event loop lags): it
 * is refused before any tier is touched, so nothing of it was stored; retry after the delay.
 */
export class OverloadedError extends AppError {
  override readonly name = "OverloadedError";
  constructor(
    reason: string,
    readonly retryAfterSeconds: number,
  ) {
    super("unavailable", "overloaded", `Server busy (${reason}); retry later`);
  }
}

/**
 * No durable tier could take the message (or serve the read): the client should retry. How long to
 * wait is the edge's business (Retry-After from configuration). When the message may have been
 * stored after all, `clientMessageId` is the key to retry with so that the retry cannot duplicate it.
 */
export class ServiceUnavailableError extends AppError {
  override readonly name = "ServiceUnavailableError";
  constructor(message: string, options?: { cause?: unknown; clientMessageId?: string }) {
    super("unavailable", "service_unavailable", message, undefined, options);
    this.clientMessageId = options?.clientMessageId;
  }
  readonly clientMessageId: string | undefined;
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
  /**
   * Whether the call may have reached the tier and done its work (a timeout, a dropped
   * connection); false only when it was refused before it was sent (an open circuit).
   */
  readonly maybeApplied: boolean;
  /**
   * The call failed while this process was overloaded (its event loop lagging): most likely its
   * own CPU, not the tier. Not counted against the tier's breaker, and no fallback takes it.
   */
  readonly overloaded: boolean;
  constructor(
    readonly tier: Tier,
    message: string,
    options?: { cause?: unknown; maybeApplied?: boolean; overloaded?: boolean },
  ) {
    super(`${tier} unavailable: ${message}`, options);
    this.maybeApplied = options?.maybeApplied ?? true;
    this.overloaded = options?.overloaded ?? false;
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
  (message: string, retry?: { clientMessageId: string }) =>
  (error: unknown): never => {
    if (isTierUnavailable(error))
      throw new ServiceUnavailableError(message, {
        cause: error,
        ...(retry !== undefined ? { clientMessageId: retry.clientMessageId } : {}),
      });
    throw error;
  };
