import { describe, expect, it } from "vitest";
import { NotFoundError, ServiceUnavailableError, TierUnavailableError } from "../../lambdas/core/errors.ts";
import { errorResponse } from "../../lambdas/runtime/http-response.ts";

const body = (response: ReturnType<typeof errorResponse>) =>
  JSON.parse(response.body as string) as { error: { code: string; message: string } };

describe("errorResponse", () => {
  it("keeps an AppError's status, code and message", () => {
    const response = errorResponse(new NotFoundError("thread_not_found", "Thread not found"));
    expect(response.statusCode).toBe(404);
    expect(body(response).error).toMatchObject({ code: "thread_not_found", message: "Thread not found" });
  });

  it("answers 503 with Retry-After for a service-unavailable error", () => {
    const response = errorResponse(new ServiceUnavailableError("Database unavailable", 5));
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("5");
  });

  it("answers 503 with Retry-After, not 500, for a tier that is down and had no fallback", () => {
    const response = errorResponse(new TierUnavailableError("redis", "circuit open"));
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("2");
    expect(body(response).error.code).toBe("service_unavailable");
    expect(body(response).error.message).not.toContain("redis");
  });

  it("answers a bare 500 for anything else, without the cause", () => {
    const response = errorResponse(new Error("secret connection string in here"));
    expect(response.statusCode).toBe(500);
    expect(body(response).error).toEqual({ code: "internal_error", message: "Internal error" });
  });
});
