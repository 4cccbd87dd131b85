import { describe, expect, it } from "vitest";
import { ArchiveService } from "../../lambdas/core/archive-service.ts";
import { type FeedbackOptions, FeedbackService, feedbackWire } from "../../lambdas/core/feedback-service.ts";
import type { Message, Thread } from "../../lambdas/core/model.ts";
import { admin, createWorld, makeMessage, postInput, service, user } from "../support/fakes.ts";
import {
  FakeFeedbackArchive,
  FakeFeedbackPublisher,
  FakeFeedbackRepository,
} from "../support/feedback-fakes.ts";
import { caught } from "./caught.ts";

const alice = user("alice");
const bob = user("bob");
const agent = service("agent");

const OPTIONS: FeedbackOptions = { sendGraceMs: 30_000, relayBatch: 25, persistWaitsMs: [50, 100, 200] };

const setup = (options: FeedbackOptions = OPTIONS) => {
  const w = createWorld();
  const feedback = new FakeFeedbackRepository(w.messages);
  const publisher = new FakeFeedbackPublisher();
  const waits: number[] = [];
  let duringWait: (() => Promise<void>) | undefined;
  const svc = new FeedbackService(
    {
      reader: w.reader,
      feedback,
      publisher,
      rateLimiter: w.rateLimiter,
      clock: w.clock,
      diagnostics: w.diagnostics,
      pause: async (ms) => {
        waits.push(ms);
        w.clock.advance(ms);
        await duringWait?.();
      },
    },
    options,
  );
  const thread = w.cachedThread("alice");
  return {
    w,
    feedback,
    publisher,
    svc,
    thread,
    waits,
    onWait: (fn: () => Promise<void>) => {
      duringWait = fn;
    },
  };
};

/** A finished streamed reply, stored in PostgreSQL. */
const storedReply = (w: ReturnType<typeof createWorld>, thread: Thread, overrides: Partial<Message> = {}) => {
  const reply = makeMessage(thread, 10 + w.messages.rows.size, {
    role: "assistant",
    user_id: "agent",
    state: "complete",
    finish_reason: "stop",
    usage: { model: "gpt-test", input_tokens: 3, output_tokens: 5 },
    ...overrides,
  });
  w.messages.put(reply);
  return reply;
};

const UP = { rating: "up", reason: null, comment: null } as const;

describe("FeedbackService.put", () => {
  it("stores the owner's rating of a reply and sends the change on, with the reply's model", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const reply = storedReply(w, thread);

    const stored = await svc.put(alice, reply.id, { rating: "down", reason: "wrong", comment: "it said 5" });

    expect(feedbackWire(stored)).toEqual({
      message_id: reply.id,
      user_id: "alice",
      rating: "down",
      reason: "wrong",
      comment: "it said 5",
      updated_at: Math.floor(w.clock.now() / 1000),
      updated_at_ms: w.clock.now(),
    });
    expect(publisher.sent()).toEqual([
      {
        message_id: reply.id,
        thread_id: thread.id,
        user_id: "alice",
        rating: "down",
        reason: "wrong",
        model: "gpt-test",
        deleted: false,
        message_created_at: reply.created_at,
        updated_at_ms: w.clock.now(),
      },
    ]);
    // The comment stays in PostgreSQL.
    expect(JSON.stringify(publisher.sent())).not.toContain("it said 5");
    expect(feedback.unsent()).toEqual([]);
  });

  it("replaces the rating (one per user and reply): fields left out are cleared, the version grows", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const reply = storedReply(w, thread);

    const first = await svc.put(alice, reply.id, { rating: "up", reason: "clear", comment: "thanks" });
    // Same millisecond: the version still grows.
    const second = await svc.put(alice, reply.id, { rating: "down", reason: null, comment: null });

    expect(second).toMatchObject({ rating: "down", reason: null, comment: null });
    expect(second.updated_at_ms).toBeGreaterThan(first.updated_at_ms);
    expect([...feedback.feedback.values()]).toEqual([second]);
    expect(publisher.sent().map((e) => [e.rating, e.updated_at_ms])).toEqual([
      ["up", first.updated_at_ms],
      ["down", second.updated_at_ms],
    ]);
  });

  it("rates a reply as the hot tier shows it at its end (model and all), before PostgreSQL has its final row", async () => {
    const { w, svc, publisher, thread } = setup();
    // PostgreSQL holds the opened reply; the hot tier the final one.
    const opened = storedReply(w, thread, { state: "streaming", finish_reason: null, usage: null });
    const final: Message = {
      ...opened,
      state: "complete",
      finish_reason: "stop",
      usage: { model: "gpt-final" },
    };
    w.cache.byId.set(opened.id, { message: final, ownerId: "alice" });

    await svc.put(alice, opened.id, UP);

    expect(publisher.sent()[0]?.model).toBe("gpt-final");
  });

  it("records the model as empty when the reply reported none", async () => {
    const { w, svc, publisher, thread } = setup();
    const reply = storedReply(w, thread, { usage: null });
    await svc.put(alice, reply.id, UP);
    expect(publisher.sent()[0]?.model).toBe("");
  });

  it("waits for a reply the hot tier shows but PostgreSQL does not hold yet (the persist delay)", async () => {
    const { w, svc, feedback, waits, onWait, thread } = setup();
    const { message } = await w.acceptor.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("Lisbon.", { role: "assistant" }),
    });
    expect(w.messages.rows.has(message.id)).toBe(false);
    onWait(async () => {
      if (waits.length === 2) await w.persistService.process(w.publisher.records());
    });

    const stored = await svc.put(alice, message.id, UP);

    expect(waits).toEqual([50, 100]);
    expect(stored.rating).toBe("up");
    expect(feedback.callsTo("put")).toHaveLength(3);
  });

  it("answers 503 when the reply has not reached PostgreSQL after the waits", async () => {
    const { w, svc, feedback, publisher, waits, thread } = setup();
    const { message } = await w.acceptor.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("Lisbon.", { role: "assistant" }),
    });

    const error = await caught(svc.put(alice, message.id, UP));

    expect(error).toMatchObject({ code: "service_unavailable", kind: "unavailable" });
    expect(waits).toEqual([50, 100, 200]);
    expect(feedback.feedback.size).toBe(0);
    expect(publisher.calls).toEqual([]);
  });

  it("is 404 message_not_found when PostgreSQL lost a reply it showed a moment ago (thread deleted)", async () => {
    const { w, svc, feedback, thread } = setup();
    const reply = storedReply(w, thread);
    feedback.put = async () => null;
    expect(await caught(svc.put(alice, reply.id, UP))).toMatchObject({ code: "message_not_found" });
  });

  it.each(["user", "system"] as const)(
    "answers feedback on a %s message like a missing one: 404 message_not_found",
    async (role) => {
      const { w, svc, feedback, thread } = setup();
      const message = storedReply(w, thread, {
        role,
        user_id: role === "user" ? "alice" : "agent",
        usage: null,
      });
      expect(await caught(svc.put(alice, message.id, UP))).toMatchObject({
        kind: "not_found",
        code: "message_not_found",
      });
      expect(await caught(svc.remove(alice, message.id))).toMatchObject({ code: "message_not_found" });
      expect(feedback.calls).toEqual([]);
    },
  );

  it("refuses feedback on a reply still streaming: 409 feedback_not_allowed", async () => {
    const { w, svc, thread } = setup();
    const reply = storedReply(w, thread, { state: "streaming", finish_reason: null, usage: null });
    expect(await caught(svc.put(alice, reply.id, UP))).toMatchObject({
      code: "feedback_not_allowed",
      message: expect.stringContaining("streaming"),
    });
  });

  it("answers another user's reply, an admin's try and an unknown id like a missing message: 404", async () => {
    const { w, svc, feedback, thread } = setup();
    const reply = storedReply(w, thread);
    for (const principal of [bob, admin("root")]) {
      expect(await caught(svc.put(principal, reply.id, UP))).toMatchObject({ code: "message_not_found" });
      expect(await caught(svc.remove(principal, reply.id))).toMatchObject({ code: "message_not_found" });
    }
    expect(await caught(svc.put(alice, "0190f2a8-0000-7000-8000-000000000000", UP))).toMatchObject({
      code: "message_not_found",
    });
    expect(feedback.calls).toEqual([]);
  });

  it("refuses service principals: 403 role_not_allowed, before looking anything up", async () => {
    const { w, svc, thread } = setup();
    const reply = storedReply(w, thread);
    const calls = w.messages.calls.length;
    expect(await caught(svc.put(agent, reply.id, UP))).toMatchObject({
      kind: "forbidden",
      code: "role_not_allowed",
    });
    expect(await caught(svc.remove(agent, reply.id))).toMatchObject({ code: "role_not_allowed" });
    expect(w.messages.calls.length).toBe(calls);
  });

  it("is rate limited like messages: 429 with Retry-After", async () => {
    const { w, svc, feedback, thread } = setup();
    const reply = storedReply(w, thread);
    w.rateLimiter.refuseFor = 3;
    expect(await caught(svc.put(alice, reply.id, UP))).toMatchObject({
      code: "rate_limited",
      retryAfterSeconds: 3,
    });
    expect(feedback.calls).toEqual([]);
  });

  it("answers 503 when PostgreSQL is down, and sends nothing", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const reply = storedReply(w, thread);
    feedback.down = true;
    expect(await caught(svc.put(alice, reply.id, UP))).toMatchObject({ code: "service_unavailable" });
    expect(await caught(svc.remove(alice, reply.id))).toMatchObject({ code: "service_unavailable" });
    expect(publisher.calls).toEqual([]);
  });
});

describe("FeedbackService.remove", () => {
  it("removes the rating and sends a removal with a higher version; removing again is fine and sends nothing", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const reply = storedReply(w, thread);
    const stored = await svc.put(alice, reply.id, { rating: "up", reason: "clear", comment: null });

    await svc.remove(alice, reply.id);
    await svc.remove(alice, reply.id);

    expect(feedback.feedback.size).toBe(0);
    const [, removal, ...more] = publisher.sent();
    expect(more).toEqual([]);
    expect(removal).toMatchObject({ message_id: reply.id, deleted: true, rating: "up", model: "gpt-test" });
    expect(removal?.updated_at_ms).toBeGreaterThan(stored.updated_at_ms);
  });

  it("keeps versions growing across a removal and a new rating, so ClickHouse ends with the newest", async () => {
    const { w, svc, publisher, thread } = setup();
    const reply = storedReply(w, thread);
    const archive = new FakeFeedbackArchive();
    const archiver = new ArchiveService(
      { store: w.store, feedback: archive, clock: w.clock, diagnostics: w.diagnostics },
      { baseDelaySeconds: 1, maxDelaySeconds: 2 },
    );

    await svc.put(alice, reply.id, UP);
    await svc.remove(alice, reply.id);
    await svc.put(alice, reply.id, { rating: "down", reason: null, comment: null });
    const versions = publisher.sent().map((e) => e.updated_at_ms);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(3);

    // Delivered in any order, the newest change wins.
    await archiver.process([...publisher.records()].reverse());
    expect(archive.live()).toEqual([expect.objectContaining({ rating: "down", deleted: false })]);
  });

  it("removes nothing from a reply PostgreSQL does not hold yet (it can have no feedback)", async () => {
    const { w, svc, publisher, thread } = setup();
    const { message } = await w.acceptor.accept({
      principal: agent,
      threadId: thread.id,
      input: postInput("Lisbon.", { role: "assistant" }),
    });
    await svc.remove(alice, message.id);
    expect(publisher.calls).toEqual([]);
  });
});

describe("sending changes on to ClickHouse", () => {
  it("answers with the stored feedback when the queue cannot take the change, and a later request sends it", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const first = storedReply(w, thread);
    const second = storedReply(w, thread);
    publisher.down = true;

    const stored = await svc.put(alice, first.id, UP);

    expect(stored.rating).toBe("up");
    expect(feedback.unsent()).toEqual([expect.objectContaining({ message_id: first.id })]);
    expect(w.diagnostics.messages()).toContain(
      "feedback change not sent to the analytics queue; a later request sends it",
    );

    // Within the grace period the change is left to its own request (it may still be sending).
    publisher.heal();
    await svc.put(alice, second.id, UP);
    expect(publisher.sent().map((e) => e.message_id)).toEqual([second.id]);

    w.clock.advance(OPTIONS.sendGraceMs);
    await svc.put(alice, second.id, { rating: "down", reason: null, comment: null });
    expect(publisher.sent().map((e) => e.message_id)).toEqual([second.id, second.id, first.id]);
    expect(feedback.unsent()).toEqual([]);
  });

  it("also carries on when the queue refuses the change as bad data", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const reply = storedReply(w, thread);
    publisher.rejectIds.add(reply.id);
    expect((await svc.put(alice, reply.id, UP)).rating).toBe("up");
    expect(feedback.unsent()).toHaveLength(1);
  });

  it("leaves a change sent but not marked sent to be sent again (harmless: the newest wins)", async () => {
    const { w, svc, feedback, publisher, thread } = setup();
    const reply = storedReply(w, thread);
    feedback.fail("markSent");

    await svc.put(alice, reply.id, UP);
    feedback.heal();
    w.clock.advance(OPTIONS.sendGraceMs);
    await svc.put(alice, storedReply(w, thread).id, UP);

    const sentFirst = publisher.sent().filter((e) => e.message_id === reply.id);
    expect(sentFirst).toHaveLength(2);
    expect(sentFirst[0]).toEqual(sentFirst[1]);
    expect(feedback.unsent()).toEqual([]);
  });

  it("takes at most relayBatch earlier changes along per request, oldest first", async () => {
    const { w, svc, feedback, publisher, thread } = setup({ ...OPTIONS, relayBatch: 2 });
    const replies = [storedReply(w, thread), storedReply(w, thread), storedReply(w, thread)];
    publisher.down = true;
    for (const r of replies) {
      await svc.put(alice, r.id, UP);
      w.clock.advance(1);
    }
    publisher.heal();
    w.clock.advance(OPTIONS.sendGraceMs);

    await svc.put(alice, storedReply(w, thread).id, UP);

    expect(publisher.batches.at(-1)?.map((e) => e.message_id)).toEqual([replies[0]?.id, replies[1]?.id]);
    expect(feedback.unsent().map((e) => e.message_id)).toEqual([replies[2]?.id]);
  });
});
