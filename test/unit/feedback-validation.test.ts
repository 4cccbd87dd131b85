import { describe, expect, it } from "vitest";
import { parseFeedback } from "../../lambdas/core/validation.ts";

const fails = (body: unknown): unknown => {
  try {
    parseFeedback(body);
  } catch (error) {
    return error;
  }
  throw new Error("expected a failure");
};

describe("parseFeedback", () => {
  it("takes a rating with an optional reason and comment; blank or left out is none", () => {
    expect(parseFeedback({ rating: "up" })).toEqual({ rating: "up", reason: null, comment: null });
    expect(parseFeedback({ rating: "down", reason: "wrong", comment: "  " })).toEqual({
      rating: "down",
      reason: "wrong",
      comment: null,
    });
    expect(parseFeedback({ rating: "down", reason: null, comment: "x".repeat(2000) }).comment).toHaveLength(
      2000,
    );
    expect(parseFeedback({ rating: "up", reason: "é".repeat(200) }).reason).toHaveLength(200);
  });

  it.each([
    [{}, "rating"],
    [{ rating: "meh" }, "rating"],
    [{ rating: "up", reason: "x".repeat(201) }, "reason"],
    [{ rating: "up", comment: "x".repeat(2001) }, "comment"],
    [{ rating: "up", reason: "a\u0000b" }, "reason"],
    [{ rating: "up", comment: 5 }, "comment"],
    [{ rating: "up", extra: true }, "(body)"],
    [null, "(body)"],
    [[], "(body)"],
  ])("refuses %j with 422 naming %s", (body, path) => {
    const error = fails(body) as { code: string; details: { path: string }[] };
    expect(error.code).toBe("validation_failed");
    expect(error.details.map((d) => d.path)).toContain(path);
  });
});
