import { describe, expect, it } from "vitest";
import {
  announceLate,
  errorFrame,
  eventFrame,
  MAX_FRAME_BYTES,
  messageCreatedFrame,
} from "../../lambdas/core/events.ts";
import { toWire } from "../../lambdas/core/model.ts";
import type { LateVisibility } from "../../lambdas/core/ports.ts";
import { createWorld, makeMessage, makeThread } from "../support/fakes.ts";

const thread = makeThread("alice");
const bytes = (s: string): number => Buffer.byteLength(s, "utf8");

describe("messageCreatedFrame", () => {
  it("carries the whole message when the frame fits", () => {
    const message = makeMessage(thread, 7, { metadata: { k: "v" } });
    expect(JSON.parse(messageCreatedFrame(message))).toEqual({
      type: "message.created",
      message: toWire(message),
    });
  });

  it("adds the extra fields it is given", () => {
    const message = makeMessage(thread, 7);
    expect(JSON.parse(messageCreatedFrame(message, { replay: true }))).toEqual({
      type: "message.created",
      replay: true,
      message: toWire(message),
    });
  });

  it("carries a live message's stream position and settled cursor beside it", () => {
    const message = makeMessage(thread, 7);
    expect(JSON.parse(messageCreatedFrame(message, { epoch: "e", pos: 3, settled: 99 }))).toEqual({
      type: "message.created",
      epoch: "e",
      pos: 3,
      settled: 99,
      message: toWire(message),
    });
  });

  it("keeps a frame of exactly 32 KB whole", () => {
    const empty = makeMessage(thread, 7, { content: "" });
    const room = MAX_FRAME_BYTES - bytes(messageCreatedFrame(empty));
    const message = { ...empty, content: "a".repeat(room) };
    const frame = messageCreatedFrame(message);
    expect(bytes(frame)).toBe(MAX_FRAME_BYTES);
    expect(JSON.parse(frame)).toEqual({ type: "message.created", message: toWire(message) });
  });

  it("announces a message whose frame would exceed 32 KB by its header only, without content or metadata", () => {
    const empty = makeMessage(thread, 7, { content: "", metadata: { big: false } });
    const room = MAX_FRAME_BYTES - bytes(messageCreatedFrame(empty));
    const message = { ...empty, content: "a".repeat(room + 1) };

    const frame = messageCreatedFrame(message, { replay: true });

    const { content: _c, metadata: _m, ...header } = toWire(message);
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
  it("build an error frame from the same body as an HTTP error", () => {
    expect(JSON.parse(errorFrame({ code: "thread_not_found", message: "Thread not found" }))).toEqual({
      type: "error",
      code: "thread_not_found",
      message: "Thread not found",
    });
    expect(
      JSON.parse(
        errorFrame({
          code: "service_unavailable",
          message: "Queue and database both unavailable",
          client_message_id: "c-1",
          retry_after_seconds: 2,
          request_id: "r1",
        }),
      ),
    ).toEqual({
      type: "error",
      code: "service_unavailable",
      message: "Queue and database both unavailable",
      client_message_id: "c-1",
      retry_after_seconds: 2,
      request_id: "r1",
    });
  });

  it("build typed event frames, with request_id only when given", () => {
    expect(JSON.parse(eventFrame("pong", { at: 5 }))).toEqual({ type: "pong", at: 5 });
    expect(JSON.parse(eventFrame("pong", { at: 5 }, "r2"))).toEqual({
      type: "pong",
      at: 5,
      request_id: "r2",
    });
  });
});

describe("announceLate", () => {
  const late = (
    threadId: string,
    subscribers: string[],
    seqs: number[],
    firstPos: number,
  ): LateVisibility => ({
    threadId,
    epoch: "ep-1",
    subscribers,
    messages: seqs.map((seq, i) => ({ message: makeMessage({ id: threadId }, seq), pos: firstPos + i })),
  });

  it("pushes every message to the thread's subscribers, in order, each with the epoch, its own pos and the settled cursor", async () => {
    const w = createWorld();
    const batch = late(thread.id, ["conn-1", "conn-2"], [7, 8], 4);

    await announceLate(w.fanout, [batch], 123);

    for (const id of ["conn-1", "conn-2"]) {
      expect(w.notifier.eventsFor(id)).toEqual(
        batch.messages.map(({ message, pos }) => ({
          type: "message.created",
          epoch: "ep-1",
          pos,
          settled: 123,
          message: toWire(message),
        })),
      );
    }
  });

  it("skips threads nobody follows, and sends each thread's messages to its own subscribers", async () => {
    const w = createWorld();
    const other = makeThread("bob");
    await announceLate(w.fanout, [late(thread.id, [], [1], 1), late(other.id, ["conn-bob"], [2], 9)], 0);
    expect(w.notifier.calls.map((c) => c.args[0])).toEqual(["conn-bob"]);
    expect(w.notifier.eventsFor("conn-bob")).toEqual([expect.objectContaining({ pos: 9 })]);
  });

  it("forgets a subscriber that is gone", async () => {
    const w = createWorld();
    w.registry.addSubscription("conn-gone", thread.id);
    w.notifier.gone.add("conn-gone");
    await announceLate(w.fanout, [late(thread.id, ["conn-gone"], [1], 1)], 0);
    expect(w.registry.isSubscribed("conn-gone", thread.id)).toBe(false);
  });
});
