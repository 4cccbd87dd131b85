import { describe, expect, it } from "vitest";
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  RateLimitedError,
  requestInProgress,
  ServiceUnavailableError,
  TierUnavailableError,
  UnauthorizedError,
  ValidationError,
} from "../../lambdas/core/errors.ts";
import { describeFailure, errorBody, errorResponse } from "../../lambdas/runtime/http-response.ts";

const RETRY = { unavailableRetryAfterSeconds: 7 };

const body = (response: ReturnType<typeof errorResponse>) =>
  JSON.parse(response.body as string) as { error: Record<string, unknown> };

describe("errorResponse", () => {
  it("keeps an AppError's status, code and message, without Retry-After", () => {
    const response = errorResponse(new NotFoundError("thread_not_found", "Thread not found"), RETRY);
    expect(response.statusCode).toBe(404);
    expect(response.headers?.["retry-after"]).toBeUndefined();
    expect(body(response).error).toEqual({ code: "thread_not_found", message: "Thread not found" });
  });

  it("answers 503 with the configured Retry-After for a service-unavailable error", () => {
    const response = errorResponse(new ServiceUnavailableError("Database unavailable"), RETRY);
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("7");
    expect(body(response).error).toEqual({
      code: "service_unavailable",
      message: "Database unavailable",
      retry_after_seconds: 7,
    });
  });

  it("tells the client which client_message_id to retry with when the message may have been stored", () => {
    const error = new ServiceUnavailableError("Queue and database both unavailable", {
      clientMessageId: "srv:abc",
    });
    const response = errorResponse(error, { ...RETRY, requestId: "req-1" });
    expect(response.statusCode).toBe(503);
    expect(body(response).error).toEqual({
      code: "service_unavailable",
      message: "Queue and database both unavailable",
      client_message_id: "srv:abc",
      retry_after_seconds: 7,
      request_id: "req-1",
    });
  });

  it("answers 409 request_in_progress with a Retry-After of one second", () => {
    const response = errorResponse(requestInProgress(), RETRY);
    expect(response.statusCode).toBe(409);
    expect(response.headers?.["retry-after"]).toBe("1");
    expect(body(response).error).toMatchObject({ code: "request_in_progress", retry_after_seconds: 1 });
  });

  it("answers any other 409 without Retry-After", () => {
    const response = errorResponse(
      new ConflictError("idempotency_key_reused", "used for other content"),
      RETRY,
    );
    expect(response.statusCode).toBe(409);
    expect(response.headers?.["retry-after"]).toBeUndefined();
  });

  it("answers 429 with the limiter's Retry-After", () => {
    const response = errorResponse(new RateLimitedError(4), RETRY);
    expect(response.statusCode).toBe(429);
    expect(response.headers?.["retry-after"]).toBe("4");
  });

  it("answers 401 with a Bearer challenge, and 403 and 422 with their codes and details", () => {
    const unauthorized = errorResponse(new UnauthorizedError(), RETRY);
    expect(unauthorized.statusCode).toBe(401);
    expect(unauthorized.headers?.["www-authenticate"]).toBe('Bearer realm="chat"');
    expect(errorResponse(new ForbiddenError("admin_required", "no"), RETRY).statusCode).toBe(403);
    const invalid = errorResponse(
      new ValidationError("Invalid message", [{ path: "content", message: "empty" }]),
      RETRY,
    );
    expect(invalid.statusCode).toBe(422);
    expect(body(invalid).error).toMatchObject({
      code: "validation_failed",
      details: [{ path: "content", message: "empty" }],
    });
  });

  it("answers 503 with Retry-After, not 500, for a tier that is down and had no fallback", () => {
    const response = errorResponse(new TierUnavailableError("redis", "circuit open"), RETRY);
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("7");
    expect(body(response).error.code).toBe("service_unavailable");
    expect(body(response).error.message).not.toContain("redis");
  });

  it("answers a bare 500 for anything else, without the cause", () => {
    const response = errorResponse(new Error("secret connection string in here"), {
      ...RETRY,
      requestId: "r9",
    });
    expect(response.statusCode).toBe(500);
    expect(response.headers?.["retry-after"]).toBeUndefined();
    expect(body(response).error).toEqual({
      code: "internal_error",
      message: "Internal error",
      request_id: "r9",
    });
  });
});

describe("describeFailure and errorBody", () => {
  it("describe a failure once, for HTTP responses and WebSocket error frames alike", () => {
    const failure = describeFailure(new ServiceUnavailableError("x", { clientMessageId: "c-1" }), 3);
    expect(failure).toEqual({
      status: 503,
      code: "service_unavailable",
      message: "x",
      retryAfterSeconds: 3,
      clientMessageId: "c-1",
    });
    expect(errorBody(failure, "r1")).toEqual({
      code: "service_unavailable",
      message: "x",
      client_message_id: "c-1",
      retry_after_seconds: 3,
      request_id: "r1",
    });
    expect(describeFailure(requestInProgress(), 3)).toMatchObject({ status: 409, retryAfterSeconds: 1 });
    expect(describeFailure(new TypeError("boom"), 3)).toEqual({
      status: 500,
      code: "internal_error",
      message: "Internal error",
    });
  });
});
