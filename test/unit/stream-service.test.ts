/**
 * The StreamService's decisions against the in-memory fakes: who may stream, end and stop; what a
 * repeated or conflicting ending is told; how a stream the hot tier lost is restored; what the idle
 * check does; what readers and new subscribers see mid-stream.
 */
import { describe, expect, it } from "vitest";
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
} from "../../lambdas/core/errors.ts";
import type { Message } from "../../lambdas/core/model.ts";
import type { Connection } from "../../lambdas/core/ports.ts";
import { createWorld, postInput, service, user, type WorldOptions } from "../support/fakes.ts";
import { caught } from "./caught.ts";

const alice = user("alice");
const bob = user("bob");
const agent = service("agent");
const IDLE_MS = 10_000;

const setup = (options: WorldOptions = {}) => {
  const w = createWorld({ streamIdleTimeoutMs: IDLE_MS, ...options });
  const thread = w.cachedThread("alice");
  /** Opens a reply as the HTTP route does: accepted, then held as a stream. */
  const open = async (): Promise<Message> => {
    const result = await w.acceptor.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("", { streaming: true, role: "assistant" }),
    });
    await w.streamService.opened(result.message, null);
    return result.message;
  };
  const append = (m: Message, index: number, text: string) =>
    w.streamService.append(agent, m.id, { index, text });
  const subscribe = async (connectionId: string) => {
    const connection: Connection = { connectionId, principal: alice, connectedAt: w.clock.now() };
    w.registry.connections.set(connectionId, connection);
    await w.subscriptionService.subscribe(connection, thread.id, {});
    return connection;
  };
  return { w, thread, open, append, subscribe };
};

describe("opening a reply", () => {
  it("accepts it streaming with empty content, holds it in the hot tier and schedules the idle check", async () => {
    const { w, open } = setup();
    const m = await open();
    expect(m).toMatchObject({ state: "streaming", content: "", role: "assistant" });
    expect(w.publisher.envelopes.map((e) => e.message)).toEqual([m]);
    expect(w.streams.streams.get(m.id)?.state).toBe("streaming");
    expect(w.publisher.checks).toEqual([
      {
        envelope: { v: 1, kind: "stream_check", thread_id: m.thread_id, message_id: m.id },
        delaySeconds: 11,
      },
    ]);
  });

  it("refuses a user who asks to stream", async () => {
    const { w, thread } = setup();
    const error = await caught(
      w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput("", { streaming: true }) }),
    );
    expect(error).toBeInstanceOf(ForbiddenError);
  });
});

describe("appending", () => {
  it("pushes each delta to the subscribers, and never writes to PostgreSQL", async () => {
    const { w, open, append, subscribe } = setup();
    await subscribe("c1");
    const m = await open();
    const writes = w.messages.calls.length;
    await append(m, 0, "a");
    await append(m, 1, "b");
    expect(w.messages.calls.length).toBe(writes);
    const deltas = w.notifier.eventsFor("c1").filter((f) => f.type === "message.delta");
    expect(deltas).toEqual([
      { type: "message.delta", message_id: m.id, thread_id: m.thread_id, index: 0, text: "a" },
      { type: "message.delta", message_id: m.id, thread_id: m.thread_id, index: 1, text: "b" },
    ]);
  });

  it("pushes the last delta again when its retry finds it applied (the try that applied it timed out)", async () => {
    const { w, open, append, subscribe } = setup();
    await subscribe("c1");
    const m = await open();
    // Applied in the hot tier, but the try never got to push it.
    await w.streams.append(
      m.thread_id,
      m.id,
      { index: 0, text: "lost?" },
      { maxDeltas: 10, maxBytes: 100, idleTimeoutMs: IDLE_MS },
    );
    expect(await append(m, 0, "lost?")).toMatchObject({ duplicate: true });
    const deltas = w.notifier.eventsFor("c1").filter((f) => f.type === "message.delta");
    expect(deltas).toEqual([
      { type: "message.delta", message_id: m.id, thread_id: m.thread_id, index: 0, text: "lost?" },
    ]);
    // An older index repeated is not pushed again.
    await append(m, 1, "next");
    await append(m, 0, "lost?");
    expect(w.notifier.eventsFor("c1").filter((f) => f.type === "message.delta")).toHaveLength(2);
  });

  it("refuses a non-service principal, a delta over its size, and a stream over its budget", async () => {
    const { w, open, append } = setup({ streamMaxDeltas: 2 });
    const m = await open();
    expect(await caught(w.streamService.append(alice, m.id, { index: 0, text: "a" }))).toBeInstanceOf(
      ForbiddenError,
    );
    expect(await caught(append(m, 0, "x".repeat(4097)))).toMatchObject({ code: "delta_too_large" });
    await append(m, 0, "a");
    await append(m, 1, "b");
    const error = await caught(append(m, 2, "c"));
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error).toMatchObject({ code: "stream_too_large" });
  });

  it("answers an unknown message 404 and a message posted whole 409", async () => {
    const { w, thread, append } = setup();
    const whole = await w.acceptor.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("done"),
    });
    expect(await caught(append(whole.message, 0, "x"))).toMatchObject({ code: "message_not_streaming" });
    const ghost = { ...whole.message, id: "00000000-0000-4000-8000-000000000001" };
    expect(await caught(append(ghost, 0, "x"))).toBeInstanceOf(NotFoundError);
  });

  it("restores a stream the hot tier lost from the opened message, taking the delta it gets as the first", async () => {
    const { w, open, append } = setup();
    const m = await open();
    await append(m, 0, "lost ");
    w.cache.flush();
    w.streams.clear();
    await w.persistService.process(w.publisher.records());
    expect(await append(m, 1, "kept")).toMatchObject({ duplicate: false, index: 1 });
    expect(await w.streams.snapshot(m.thread_id, m.id)).toMatchObject({ baseIndex: 1, content: "kept" });
  });

  it("answers 503 while the hot tier is down (the agent retries the delta)", async () => {
    const { w, open, append } = setup();
    const m = await open();
    w.redisDown();
    expect(await caught(append(m, 0, "a"))).toBeInstanceOf(ServiceUnavailableError);
  });

  it("closes a stream found idle on an append, and refuses the append", async () => {
    const { w, open, append } = setup();
    const m = await open();
    await append(m, 0, "a");
    w.clock.advance(IDLE_MS + 1);
    expect(await caught(append(m, 1, "b"))).toMatchObject({ code: "message_not_streaming" });
    expect(w.streams.streams.get(m.id)?.final).toMatchObject({
      state: "error",
      finish_reason: "timeout",
      content: "a",
    });
  });
});

describe("ending", () => {
  it("completes with the deltas joined, usage and server-measured timings, sent to SQS and the subscribers", async () => {
    const { w, open, append, subscribe } = setup();
    await subscribe("c1");
    const m = await open();
    w.clock.advance(120);
    await append(m, 0, "Hello ");
    w.clock.advance(80);
    await append(m, 1, "world");
    w.clock.advance(50);
    const usage = { model: "m1", input_tokens: 2, output_tokens: 2 };
    const final = await w.streamService.end(agent, m.id, {
      state: "complete",
      finishReason: "stop",
      usage,
      metadata: { rated: false },
    });
    const { state: _state, ...base } = m;
    expect(final).toEqual({
      ...base,
      content: "Hello world",
      metadata: { rated: false },
      state: "complete",
      finish_reason: "stop",
      usage,
      first_delta_ms: 120,
      duration_ms: 250,
    });
    expect(w.publisher.envelopes.at(-1)).toMatchObject({ message: final, owner_id: "alice" });
    expect(w.notifier.eventsFor("c1").at(-1)).toMatchObject({
      type: "message.completed",
      message: { id: m.id },
    });
  });

  it("answers a repeated ending with the same final message and sends it to SQS again", async () => {
    const { w, open } = setup();
    const m = await open();
    const first = await w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" });
    const sent = w.publisher.envelopes.length;
    expect(await w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" })).toEqual(
      first,
    );
    expect(w.publisher.envelopes.length).toBe(sent + 1);
  });

  it("refuses to complete or cancel a message posted whole", async () => {
    const { w, thread } = setup();
    const whole = await w.acceptor.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("done"),
    });
    for (const ending of [
      { state: "complete", finishReason: "stop" },
      { state: "cancelled", finishReason: "cancelled" },
    ] as const) {
      expect(await caught(w.streamService.end(agent, whole.message.id, ending))).toMatchObject({
        code: "message_not_streaming",
      });
    }
  });

  it("tells the subscribers when a repeated ending succeeds where the first failed after the hot tier decided", async () => {
    const { w, open, subscribe } = setup();
    await subscribe("c1");
    const m = await open();
    w.publisher.fail("publish");
    expect(
      await caught(w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" })),
    ).toBeInstanceOf(ServiceUnavailableError);
    w.publisher.heal();
    const final = await w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" });
    expect(w.publisher.envelopes.at(-1)?.message).toEqual(final);
    const endings = w.notifier.eventsFor("c1").filter((f) => f.type === "message.completed");
    expect(endings).toEqual([
      expect.objectContaining({ message: expect.objectContaining({ id: m.id, state: "complete" }) }),
    ]);
  });

  it("does not hold again a reply PostgreSQL has ended, whatever an old cached copy says", async () => {
    const { w, open, append } = setup();
    const m = await open();
    await w.persistService.process(w.publisher.records());
    const final = await w.streamService.end(agent, m.id, {
      state: "complete",
      finishReason: "stop",
      content: "done",
    });
    await w.persistService.process(w.publisher.records());
    // The hot tier lost the stream; its lookup by id still has the opened copy.
    w.streams.clear();
    w.cache.byId.set(m.id, { message: m, ownerId: "alice" });
    expect(await caught(append(m, 0, "late"))).toMatchObject({ code: "message_not_streaming" });
    expect(
      await caught(w.streamService.end(alice, m.id, { state: "cancelled", finishReason: "cancelled" })),
    ).toMatchObject({
      code: "message_not_streaming",
    });
    expect(w.streams.streams.has(m.id)).toBe(false);
    expect((await w.messages.findById(m.id))?.message).toEqual(final);
  });

  it("refuses another ending after one won, with 409", async () => {
    const { w, open } = setup();
    const m = await open();
    await w.streamService.end(alice, m.id, { state: "cancelled", finishReason: "cancelled" });
    const error = await caught(w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" }));
    expect(error).toBeInstanceOf(ConflictError);
    expect(error).toMatchObject({ code: "message_not_streaming" });
  });

  it("lets the thread's owner or a service stop a reply, and hides it from anyone else", async () => {
    const { w, open } = setup();
    const m = await open();
    expect(
      await caught(w.streamService.end(bob, m.id, { state: "cancelled", finishReason: "cancelled" })),
    ).toBeInstanceOf(NotFoundError);
    expect(
      await caught(w.streamService.end(alice, m.id, { state: "complete", finishReason: "stop" })),
    ).toBeInstanceOf(ForbiddenError);
    expect(
      await w.streamService.end(alice, m.id, { state: "cancelled", finishReason: "cancelled" }),
    ).toMatchObject({
      state: "cancelled",
    });
  });

  it("builds the final message again when a delta lands between its snapshot and its end", async () => {
    const { w, open, append } = setup();
    const m = await open();
    await append(m, 0, "a");
    const finish = w.streams.finish.bind(w.streams);
    let raced = false;
    w.streams.finish = async (final, owner, expected) => {
      if (!raced) {
        raced = true;
        await append(m, 1, "b");
      }
      return finish(final, owner, expected);
    };
    expect(
      (await w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" })).content,
    ).toBe("ab");
  });

  it("after a loss, ends a stream from its opened message (the agent's content kept)", async () => {
    const { w, open, append } = setup();
    const m = await open();
    await append(m, 0, "gone");
    w.cache.flush();
    w.streams.clear();
    await w.persistService.process(w.publisher.records());
    const final = await w.streamService.end(agent, m.id, {
      state: "complete",
      finishReason: "stop",
      content: "full",
    });
    expect(final).toMatchObject({ state: "complete", content: "full" });
    // The delta before the loss is gone with the hot tier's copy: no first delta was seen since.
    expect(final.first_delta_ms).toBeUndefined();
  });
});

describe("the idle check", () => {
  it("looks again after the time left, closes an idle stream, then stops", async () => {
    const { w, open, append } = setup();
    const m = await open();
    w.clock.advance(4_000);
    await append(m, 0, "a");
    w.clock.advance(3_000);
    expect(await w.streamService.check(m.thread_id, m.id)).toBe(7_000);
    w.clock.advance(7_000);
    expect(await w.streamService.check(m.thread_id, m.id)).toBeNull();
    expect(w.streams.streams.get(m.id)?.final).toMatchObject({ state: "error", finish_reason: "timeout" });
    // Once PostgreSQL has the final form, a later look finds nothing left to watch.
    await w.persistService.process(w.publisher.records());
    expect((await w.messages.findById(m.id))?.message).toMatchObject({ state: "error" });
    expect(await w.streamService.check(m.thread_id, m.id)).toBeNull();
  });

  it("looks again later when PostgreSQL does not have the opened reply yet", async () => {
    const { w, open } = setup();
    const m = await open();
    w.clock.advance(IDLE_MS);
    await w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" });
    // The opened record is still on its way to PostgreSQL: the watch goes on.
    expect(await w.streamService.check(m.thread_id, m.id)).toBe(IDLE_MS);
  });

  it("holds a stream the hot tier lost again, giving a live agent the whole timeout", async () => {
    const { w, open } = setup();
    const m = await open();
    await w.persistService.process(w.publisher.records());
    w.streams.clear();
    expect(await w.streamService.check(m.thread_id, m.id)).toBe(IDLE_MS);
    expect(w.streams.streams.get(m.id)?.state).toBe("streaming");
  });

  it("sends again a final message the hot tier has but PostgreSQL lacks", async () => {
    const { w, open } = setup();
    const m = await open();
    await w.persistService.process(w.publisher.records());
    w.publisher.fail("publish");
    await caught(w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" }));
    w.publisher.heal();
    expect(await w.streamService.check(m.thread_id, m.id)).toBeNull();
    expect(w.publisher.envelopes.at(-1)?.message).toMatchObject({ id: m.id, state: "complete" });
  });

  it("is run by the persist consumer, which schedules the next look", async () => {
    const { w, open } = setup();
    const m = await open();
    const records = w.publisher.checks.map((c, i) => ({
      id: `check-${i}`,
      body: JSON.stringify(c.envelope),
      receiveCount: 1,
    }));
    w.clock.advance(2_000);
    const outcome = await w.persistService.process(records);
    expect(outcome.failures).toEqual([]);
    expect(w.publisher.checks.at(-1)).toMatchObject({ delaySeconds: 9, envelope: { message_id: m.id } });
  });
});

describe("reads and subscribers mid-stream", () => {
  it("show the content so far and the last index in it; after the end, the final message", async () => {
    const { w, thread, open, append } = setup();
    const m = await open();
    await append(m, 0, "par");
    await append(m, 1, "tial");
    const read = await w.reader.message(alice, m.id);
    expect(read.value).toMatchObject({ state: "streaming", content: "partial", delta_index: 1 });
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
    expect(page.value.messages).toEqual([read.value]);
    const final = await w.streamService.end(agent, m.id, { state: "complete", finishReason: "stop" });
    expect((await w.reader.message(alice, m.id)).value).toEqual(final);
  });

  it("send a new subscriber each reply still streaming as a snapshot, then the deltas after it", async () => {
    const { w, open, append, subscribe } = setup();
    const m = await open();
    await append(m, 0, "a");
    await subscribe("c2");
    await append(m, 1, "b");
    const frames = w.notifier.eventsFor("c2");
    expect(frames.map((f) => f.type)).toEqual(["message.snapshot", "subscribed", "message.delta"]);
    expect(frames[0]).toMatchObject({ message: { id: m.id, content: "a", delta_index: 0 } });
    expect(frames[2]).toMatchObject({ index: 1, text: "b" });
  });
});
