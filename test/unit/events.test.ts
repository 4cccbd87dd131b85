import { describe, expect, it } from "vitest";
import { errorFrame, eventFrame, MAX_FRAME_BYTES, messageCreatedFrame } from "../../lambdas/core/events.ts";
import { makeMessage, makeThread } from "../support/fakes.ts";

const thread = makeThread("alice");
const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

describe("messageCreatedFrame", () => {
  it("carries the whole message when the frame fits", () => {
    const message = makeMessage(thread, 7, { metadata: { k: "v" } });
    expect(JSON.parse(messageCreatedFrame(message))).toEqual({ type: "message.created", message });
  });

  it("adds the extra fields it is given", () => {
    const message = makeMessage(thread, 7);
    expect(JSON.parse(messageCreatedFrame(message, { replay: true }))).toEqual({
      type: "message.created",
      replay: true,
      message,
    });
  });

  it("keeps a frame of exactly 32 KB whole", () => {
    const empty = makeMessage(thread, 7, { content: "" });
    const room = MAX_FRAME_BYTES - bytes(messageCreatedFrame(empty));
    const message = { ...empty, content: "a".repeat(room) };
    const frame = messageCreatedFrame(message);
    expect(bytes(frame)).toBe(MAX_FRAME_BYTES);
    expect(JSON.parse(frame)).toEqual({ type: "message.created", message });
  });

  it("announces a message whose frame would exceed 32 KB by its header only, without content or metadata", () => {
    const empty = makeMessage(thread, 7, { content: "", metadata: { big: false } });
    const room = MAX_FRAME_BYTES - bytes(messageCreatedFrame(empty));
    const message = { ...empty, content: "a".repeat(room + 1) };

    const frame = messageCreatedFrame(message, { replay: true });

    const { content: _c, metadata: _m, ...header } = message;
    expect(JSON.parse(frame)).toEqual({
      type: "message.created",
      replay: true,
      truncated: true,
      message: header,
    });
    expect(bytes(frame)).toBeLessThanOrEqual(MAX_FRAME_BYTES);
  });

  it("measures the frame in UTF-8 bytes, not characters", () => {
    // 12,000 characters, 36,000 bytes.
    const message = makeMessage(thread, 7, { content: "€".repeat(12_000) });
    const parsed = JSON.parse(messageCreatedFrame(message)) as { truncated?: boolean; message: object };
    expect(parsed.truncated).toBe(true);
    expect(parsed.message).not.toHaveProperty("content");
  });

  it("truncates a message whose metadata alone is too big", () => {
    const message = makeMessage(thread, 7, { content: "short", metadata: { blob: "x".repeat(40_000) } });
    const parsed = JSON.parse(messageCreatedFrame(message)) as { truncated?: boolean; message: object };
    expect(parsed.truncated).toBe(true);
    expect(parsed.message).not.toHaveProperty("metadata");
    expect(parsed.message).toHaveProperty("id", message.id);
  });
});

describe("errorFrame and eventFrame", () => {
  it("build typed frames, with request_id only when given", () => {
    expect(JSON.parse(errorFrame("thread_not_found", "Thread not found"))).toEqual({
      type: "error",
      code: "thread_not_found",
      message: "Thread not found",
    });
    expect(JSON.parse(errorFrame("rate_limited", "slow down", "r1"))).toEqual({
      type: "error",
      code: "rate_limited",
      message: "slow down",
      request_id: "r1",
    });
    expect(JSON.parse(eventFrame("pong", { at: 5 }))).toEqual({ type: "pong", at: 5 });
    expect(JSON.parse(eventFrame("pong", { at: 5 }, "r2"))).toEqual({
      type: "pong",
      at: 5,
      request_id: "r2",
    });
  });
});
