import { describe, expect, it } from "vitest";
import { RateLimitedError } from "../../lambdas/core/errors.ts";
import { admit, unlimited } from "../../lambdas/core/rate-limit.ts";
import {
  createWorld,
  FakeRateLimiter,
  postInput,
  RecordingDiagnostics,
  service,
  user,
} from "../support/fakes.ts";
import { caught } from "./caught.ts";

describe("admit", () => {
  it("takes one token from the user's bucket and admits", async () => {
    const limiter = new FakeRateLimiter();
    await admit(limiter, user("alice"), new RecordingDiagnostics());
    expect(limiter.callsTo("take")).toEqual([["alice"]]);
  });

  it("refuses with 429 and a whole-second Retry-After of at least 1", async () => {
    const limiter = new FakeRateLimiter();
    for (const [wait, expected] of [
      [0.2, 1],
      [0, 1],
      [4.1, 5],
    ] as const) {
      limiter.refuseFor = wait;
      const error = await caught(admit(limiter, user("alice"), new RecordingDiagnostics()));
      expect(error).toBeInstanceOf(RateLimitedError);
      expect(error).toMatchObject({
        kind: "rate_limited",
        code: "rate_limited",
        retryAfterSeconds: expected,
      });
    }
  });

  it("does not limit service principals", async () => {
    const limiter = new FakeRateLimiter();
    limiter.refuseFor = 10;
    await admit(limiter, service("agent"), new RecordingDiagnostics());
    expect(limiter.calls).toEqual([]);
  });

  it("admits, with a warning, when the limiter is unavailable", async () => {
    const limiter = new FakeRateLimiter();
    limiter.down = true;
    const diagnostics = new RecordingDiagnostics();
    await admit(limiter, user("alice"), diagnostics);
    expect(diagnostics.messages()).toEqual(["rate limiter unavailable; admitting"]);
  });

  it("admits everything with the unlimited limiter", async () => {
    await admit(unlimited, user("alice"), new RecordingDiagnostics());
    expect(await unlimited.take("alice")).toEqual({ allowed: true, retryAfterSeconds: 0 });
  });
});

describe("Acceptor.accept under a rate limit", () => {
  it.each(["queued", "sync"] as const)(
    "refuses a user over budget with 429 and stores nothing (%s mode)",
    async (mode) => {
      const w = createWorld({ mode });
      const thread = w.cachedThread("alice");
      w.rateLimiter.refuseFor = 3;
      const error = await caught(
        w.acceptor.accept({ principal: user("alice"), threadId: thread.id, input: postInput("x") }),
      );
      expect(error).toBeInstanceOf(RateLimitedError);
      expect(error).toMatchObject({ retryAfterSeconds: 3 });
      expect(w.publisher.envelopes).toEqual([]);
      expect(w.messages.rows.size).toBe(0);
      expect(w.cache.callsTo("store")).toEqual([]);
      expect(w.cache.byId.size).toBe(0);
    },
  );

  it("abandons the reservation it made meanwhile: the key and the seq are free again", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    w.rateLimiter.refuseFor = 3;
    const input = postInput("x", { clientMessageId: "c-1" });
    await caught(w.acceptor.accept({ principal: user("alice"), threadId: thread.id, input }));

    const [release] = w.cache.callsTo("release");
    expect(release?.[0]).toMatchObject({ outcome: { kind: "abandoned" } });
    expect(w.cache.pendingSeqs(thread.id)).toEqual([]);

    // Retried at once, with the same key: neither a 409 nor a wait for the refused try.
    w.rateLimiter.refuseFor = undefined;
    const retry = await w.acceptor.accept({ principal: user("alice"), threadId: thread.id, input });
    expect(retry).toMatchObject({ replayed: false, cache: "written" });
    expect(w.pauses.log).toEqual([]);
  });

  it("refuses a retry of an accepted key over budget too (the budget is checked first)", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    const input = postInput("x", { clientMessageId: "c-1" });
    await w.acceptor.accept({ principal: user("alice"), threadId: thread.id, input });
    w.rateLimiter.refuseFor = 1;
    expect(
      await caught(w.acceptor.accept({ principal: user("alice"), threadId: thread.id, input })),
    ).toBeInstanceOf(RateLimitedError);
    expect(w.cache.callsTo("release")).toEqual([]);
  });

  it("does not limit a service principal", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    w.rateLimiter.refuseFor = 3;
    const result = await w.acceptor.accept({
      principal: service("agent"),
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(result.cache).toBe("written");
    expect(w.rateLimiter.calls).toEqual([]);
  });

  it("still accepts when Redis (and with it the limiter) is down", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    w.redisDown();
    const result = await w.acceptor.accept({
      principal: user("alice"),
      threadId: thread.id,
      input: postInput("x"),
    });
    expect(result).toMatchObject({ durability: "committed", cache: "skipped" });
    expect(w.diagnostics.messages()).toContain("rate limiter unavailable; admitting");
  });
});
