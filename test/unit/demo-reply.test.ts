/** The demo agent's made-up replies: friendly, bounded, and the same for the same question. */
import { describe, expect, it } from "vitest";
import { composeReply } from "../../scripts/local-stack/demo-agent.ts";

describe("composeReply", () => {
  it("echoes the question and gives the same reply for the same seed", () => {
    const reply = composeReply("Where should we go this summer?", "q-1");
    expect(reply).toContain('"Where should we go this summer?"');
    expect(composeReply("Where should we go this summer?", "q-1")).toBe(reply);
    expect(reply.split(" ").length).toBeGreaterThan(20);
    expect(reply).toMatch(/^\S.*\S$/);
    expect(reply).not.toMatch(/\s{2}/);
  });

  it("quotes at most 12 words and 120 characters of the question, with its quotes made single", () => {
    const long = composeReply(`${"word ".repeat(40)}?`, "q-2");
    expect(long).toContain(`"${"word ".repeat(11)}word…"`);
    const unbroken = composeReply("x".repeat(5000), "q-3");
    expect(unbroken).toContain(`"${"x".repeat(120)}…"`);
    expect(Buffer.byteLength(unbroken)).toBeLessThan(1000);
    expect(composeReply('He said "hi" to me!', "q-4")).toContain(`"He said 'hi' to me!"`);
  });

  it("answers an empty message too", () => {
    expect(composeReply("   ", "q-5")).toMatch(/^You sent an empty message/);
  });
});
