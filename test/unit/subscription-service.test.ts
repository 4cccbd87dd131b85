import { describe, expect, it } from "vitest";
import {
  AppError,
  NotFoundError,
  ServiceUnavailableError,
  UnauthorizedError,
} from "../../lambdas/core/errors.ts";
import { type Message, toWire } from "../../lambdas/core/model.ts";
import type { Connection } from "../../lambdas/core/ports.ts";
import { createWorld, makeMessage, postInput, user } from "../support/fakes.ts";
import { caught } from "./caught.ts";

const alice = user("alice");

const setup = (options: Parameters<typeof createWorld>[0] = {}) => {
  const w = createWorld(options);
  const thread = w.seedThread("alice");
  const connection: Connection = { connectionId: "conn-1", principal: alice, connectedAt: w.clock.now() };
  w.registry.connections.set(connection.connectionId, connection);
  return { w, thread, connection };
};

const seedMessages = (w: ReturnType<typeof createWorld>, threadId: string, seqs: number[]): Message[] => {
  const list = seqs.map((seq) => makeMessage({ id: threadId }, seq));
  // Out of order on purpose: the replay must come in seq order regardless.
  w.messages.put(...[...list].reverse());
  return list;
};

describe("SubscriptionService.connect", () => {
  it.each([
    ["missing", undefined],
    ["empty", ""],
  ])("refuses a %s token with UnauthorizedError and registers nothing", async (_what, token) => {
    const { w } = setup();
    const error = await caught(w.subscriptionService.connect("conn-2", token));
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error).toMatchObject({ kind: "unauthenticated", code: "unauthorized" });
    expect(w.registry.callsTo("register")).toEqual([]);
  });

  it("refuses a token the verifier rejects with UnauthorizedError", async () => {
    const { w } = setup();
    const error = await caught(w.subscriptionService.connect("conn-2", "forged"));
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(w.registry.callsTo("register")).toEqual([]);
  });

  it("registers the connection with its principal and the time it connected", async () => {
    const { w } = setup();
    w.verifier.tokens.set("good", alice);
    expect(await w.subscriptionService.connect("conn-2", "good")).toEqual(alice);
    expect(w.registry.connections.get("conn-2")).toEqual({
      connectionId: "conn-2",
      principal: alice,
      connectedAt: w.clock.now(),
    });
  });

  it("answers 503 when the registry is down", async () => {
    const { w } = setup();
    w.verifier.tokens.set("good", alice);
    w.redisDown();
    expect(await caught(w.subscriptionService.connect("conn-2", "good"))).toBeInstanceOf(
      ServiceUnavailableError,
    );
  });
});

describe("SubscriptionService.connection / disconnect", () => {
  it("returns a registered connection", async () => {
    const { w, connection } = setup();
    expect(await w.subscriptionService.connection("conn-1")).toEqual(connection);
  });

  it("refuses an unknown connection with connection_unknown", async () => {
    const { w } = setup();
    const error = await caught(w.subscriptionService.connection("conn-404"));
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ kind: "unauthenticated", code: "connection_unknown" });
  });

  it("answers 503 when the registry is down", async () => {
    const { w } = setup();
    w.redisDown();
    expect(await caught(w.subscriptionService.connection("conn-1"))).toBeInstanceOf(ServiceUnavailableError);
  });

  it("forgets a connection and its subscriptions on disconnect", async () => {
    const { w, thread } = setup();
    w.registry.addSubscription("conn-1", thread.id);
    await w.subscriptionService.disconnect("conn-1");
    expect(w.registry.connections.has("conn-1")).toBe(false);
    expect(w.registry.subscribersOf(thread.id)).toEqual([]);
  });

  it("only warns when the registry is down on disconnect", async () => {
    const { w } = setup();
    w.redisDown();
    await w.subscriptionService.disconnect("conn-1");
    expect(w.diagnostics.messages()).toEqual(["could not remove connection"]);
  });
});

describe("SubscriptionService.subscribe: catching up by seq", () => {
  it("joins the thread before it replays anything", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10, 11]);
    const subscribedAtSend: boolean[] = [];
    w.notifier.onSend = () => subscribedAtSend.push(w.registry.isSubscribed("conn-1", thread.id));

    await w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 0 });

    expect(subscribedAtSend).toEqual([true, true, true]);
    expect(w.registry.connectionThreads.get("conn-1")).toEqual(new Set([thread.id]));
  });

  it("replays the messages after sinceSeq in seq order, then sends a subscribed frame with the position to resume from", async () => {
    const { w, thread, connection } = setup();
    const list = seedMessages(w, thread.id, [10, 11, 12, 13]);

    const result = await w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 10 }, "req-7");

    const position = { epoch: expect.any(String), pos: 0 };
    expect(result).toEqual({ replayed: 3, hasMore: false, recovered: false, position });
    const wire = list.map(toWire);
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      { type: "message.created", replay: true, message: wire[1] },
      { type: "message.created", replay: true, message: wire[2] },
      { type: "message.created", replay: true, message: wire[3] },
      {
        type: "subscribed",
        threadId: thread.id,
        recovered: false,
        replayed: 3,
        has_more: false,
        epoch: result.position.epoch,
        pos: 0,
        settled: w.settled(),
        request_id: "req-7",
      },
    ]);
  });

  it("replays at most replayLimit messages and says where to continue", async () => {
    const { w, thread, connection } = setup({ replayLimit: 2 });
    const list = seedMessages(w, thread.id, [10, 11, 12, 13]);

    const result = await w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 0 });

    expect(result).toMatchObject({ replayed: 2, hasMore: true, recovered: false });
    const events = w.notifier.eventsFor("conn-1");
    expect(events.slice(0, 2).map((e) => e.message)).toEqual(list.slice(0, 2).map(toWire));
    expect(events[2]).toMatchObject({ type: "subscribed", replayed: 2, has_more: true, next_cursor: 11 });
  });

  it("catches up from both tiers: PostgreSQL below the hot tier's floor, the hot tier above it", async () => {
    const { w, thread, connection } = setup();
    const stored = seedMessages(w, thread.id, [10, 11]);
    await w.access.install(thread.id);
    const fresh = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("fresh"),
    });

    await w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 10 });

    const replayed = w.notifier.eventsFor("conn-1").filter((e) => e.type === "message.created");
    expect(replayed.map((e) => e.message)).toEqual([...stored.slice(1), fresh.message].map(toWire));
  });

  it("sends only the subscribed frame when the subscriber gives neither a position nor a seq", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10]);
    expect(await w.subscriptionService.subscribe(connection, thread.id, {})).toMatchObject({
      replayed: 0,
      hasMore: false,
      recovered: false,
    });
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      expect.objectContaining({ type: "subscribed", threadId: thread.id, replayed: 0, has_more: false }),
    ]);
    expect(w.registry.isSubscribed("conn-1", thread.id)).toBe(true);
  });

  it("stops replaying when the connection is gone, without a subscribed frame, and forgets it", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10, 11, 12]);
    let sends = 0;
    w.notifier.onSend = () => {
      if (++sends === 2) w.notifier.gone.add("conn-1");
    };

    expect(await w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 0 })).toMatchObject({
      replayed: 1,
      hasMore: true,
      recovered: false,
    });
    expect(w.notifier.callsTo("send")).toHaveLength(2);
    expect(w.registry.connections.has("conn-1")).toBe(false);
    expect(w.registry.isSubscribed("conn-1", thread.id)).toBe(false);
  });
});

describe("SubscriptionService.subscribe: resuming by stream position", () => {
  /** A subscriber that saw the thread up to `seen`, then missed what follows. */
  const missed = async (count: number, options: Parameters<typeof createWorld>[0] = {}) => {
    const w = createWorld(options);
    const thread = w.cachedThread("alice");
    const seen = (
      await w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput("seen") })
    ).position;
    if (seen === null) throw new Error("no position");
    const messages: Message[] = [];
    for (let i = 0; i < count; i++) {
      messages.push(
        (await w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput(`missed ${i}`) }))
          .message,
      );
    }
    const connection: Connection = { connectionId: "conn-1", principal: alice, connectedAt: w.clock.now() };
    return { w, thread, connection, seen: { epoch: seen.epoch, pos: seen.pos }, messages };
  };

  it("replays exactly the messages after the subscriber's position, each with its pos, and says it recovered", async () => {
    const { w, thread, connection, seen, messages } = await missed(2);

    const result = await w.subscriptionService.subscribe(
      connection,
      thread.id,
      { position: seen, sinceSeq: 1 },
      "r1",
    );

    expect(result).toEqual({
      replayed: 2,
      hasMore: false,
      recovered: true,
      position: { epoch: seen.epoch, pos: 3 },
    });
    const wire = messages.map(toWire);
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      { type: "message.created", replay: true, epoch: seen.epoch, pos: 2, message: wire[0] },
      { type: "message.created", replay: true, epoch: seen.epoch, pos: 3, message: wire[1] },
      {
        type: "subscribed",
        threadId: thread.id,
        recovered: true,
        replayed: 2,
        has_more: false,
        epoch: seen.epoch,
        pos: 3,
        settled: w.settled(),
        request_id: "r1",
      },
    ]);
    // The replay came from the hot tier's log: no history read.
    expect(w.cache.callsTo("history")).toEqual([]);
    expect(w.messages.callsTo("history")).toEqual([]);
  });

  it("replays nothing for a subscriber that is up to date", async () => {
    const { w, thread, connection, messages } = await missed(1);
    const current = {
      epoch: (await w.cache.follow(thread.id, "probe", null, 1))?.position.epoch ?? "",
      pos: 2,
    };
    expect(messages).toHaveLength(1);
    const result = await w.subscriptionService.subscribe(connection, thread.id, { position: current });
    expect(result).toMatchObject({ replayed: 0, recovered: true, position: current });
  });

  it("pushes a message that becomes visible after the subscription live, with the next pos", async () => {
    const { w, thread, connection, seen } = await missed(0);
    const { position } = await w.subscriptionService.subscribe(connection, thread.id, { position: seen });

    const next = await w.acceptor.accept({ principal: alice, threadId: thread.id, input: postInput("live") });

    expect(next.position).toMatchObject({ epoch: position.epoch, pos: position.pos + 1 });
    expect(w.notifier.eventsFor("conn-1").at(-1)).toEqual({
      type: "message.created",
      ...next.position,
      message: toWire(next.message),
    });
  });

  it("catches up by seq instead when the subscriber is further behind than replayLimit", async () => {
    const { w, thread, connection, seen, messages } = await missed(3, { replayLimit: 2 });
    await w.persistService.process(w.publisher.records());

    const result = await w.subscriptionService.subscribe(connection, thread.id, {
      position: seen,
      sinceSeq: messages[0]?.seq ?? 0,
    });

    expect(result).toMatchObject({ recovered: false, replayed: 2, hasMore: false });
    expect(w.notifier.eventsFor("conn-1").slice(0, 2)).toEqual(
      messages
        .slice(1)
        .map((message) => ({ type: "message.created", replay: true, message: toWire(message) })),
    );
  });

  it("catches up by seq when the hot tier lost the thread (a new epoch), reading what PostgreSQL has", async () => {
    const { w, thread, connection, seen, messages } = await missed(2);
    await w.persistService.process(w.publisher.records());
    w.cache.flush();

    const result = await w.subscriptionService.subscribe(connection, thread.id, {
      position: seen,
      sinceSeq: messages[0]?.seq ?? 0,
    });

    expect(result.recovered).toBe(false);
    expect(result.position.epoch).not.toBe(seen.epoch);
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      { type: "message.created", replay: true, message: messages.map(toWire)[1] },
      expect.objectContaining({
        type: "subscribed",
        recovered: false,
        replayed: 1,
        epoch: result.position.epoch,
        pos: 0,
      }),
    ]);
  });

  it("replays nothing, and says so, when the position cannot be replayed and no seq is given", async () => {
    const { w, thread, connection } = await missed(1);
    const result = await w.subscriptionService.subscribe(connection, thread.id, {
      position: { epoch: "an-epoch-long-gone", pos: 1 },
    });
    expect(result).toMatchObject({ replayed: 0, recovered: false });
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      expect.objectContaining({ type: "subscribed", recovered: false }),
    ]);
  });
});

describe("SubscriptionService.subscribe: refusals and outages", () => {
  it("refuses another user's thread as thread_not_found and does not subscribe", async () => {
    const { w, thread } = setup();
    const bobs: Connection = { connectionId: "conn-bob", principal: user("bob"), connectedAt: 0 };
    const error = await caught(w.subscriptionService.subscribe(bobs, thread.id, { sinceSeq: 0 }));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ code: "thread_not_found" });
    expect(w.registry.isSubscribed("conn-bob", thread.id)).toBe(false);
    expect(w.cache.callsTo("follow")).toEqual([]);
    expect(w.notifier.calls).toEqual([]);
  });

  it("answers 503 when the registry cannot record the subscription", async () => {
    const { w, thread, connection } = setup();
    w.registry.fail("subscribe");
    expect(
      await caught(w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 0 })),
    ).toBeInstanceOf(ServiceUnavailableError);
    expect(w.notifier.calls).toEqual([]);
  });

  it("answers 503 when the hot tier cannot be followed", async () => {
    const { w, thread, connection } = setup();
    w.cache.fail("follow");
    expect(await caught(w.subscriptionService.subscribe(connection, thread.id, {}))).toBeInstanceOf(
      ServiceUnavailableError,
    );
    expect(w.notifier.calls).toEqual([]);
  });

  it("installs the thread when the hot tier has no state for it, and answers 503 when it still has none", async () => {
    const { w, thread, connection } = setup();
    w.cache.fail("install");
    const error = await caught(w.subscriptionService.subscribe(connection, thread.id, {}));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ message: "Thread state unavailable; retry" });
    expect(w.cache.callsTo("follow")).toHaveLength(2);
    expect(w.threads.callsTo("getForInstall")).toHaveLength(2);
  });

  it("answers 503 when the catch-up cannot be read", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10]);
    w.messages.down = true;
    expect(
      await caught(w.subscriptionService.subscribe(connection, thread.id, { sinceSeq: 0 })),
    ).toBeInstanceOf(ServiceUnavailableError);
  });
});

describe("SubscriptionService: unsubscribe, ping, reject", () => {
  it("unsubscribes and confirms with an unsubscribed frame", async () => {
    const { w, thread, connection } = setup();
    w.registry.addSubscription("conn-1", thread.id);
    await w.subscriptionService.unsubscribe(connection, thread.id, "r1");
    expect(w.registry.isSubscribed("conn-1", thread.id)).toBe(false);
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      { type: "unsubscribed", threadId: thread.id, request_id: "r1" },
    ]);
  });

  it("answers a ping with a pong carrying the server time", async () => {
    const { w } = setup();
    await w.subscriptionService.ping("conn-1", "p1");
    expect(w.notifier.eventsFor("conn-1")).toEqual([{ type: "pong", at: w.clock.now(), request_id: "p1" }]);
  });

  it("sends an error frame, and only warns when it cannot", async () => {
    const { w } = setup();
    await w.subscriptionService.reject("conn-1", "frame-1");
    expect(w.notifier.framesFor("conn-1")).toEqual(["frame-1"]);
    w.notifier.down = true;
    await w.subscriptionService.reject("conn-1", "frame-2");
    expect(w.diagnostics.messages()).toEqual(["could not send error frame"]);
  });
});

describe("SubscriptionService: limits and sessions", () => {
  it("refuses a connection beyond the per-user limit, and forgets it", async () => {
    const { w } = setup();
    w.verifier.tokens.set("good", alice);
    for (let i = 2; i <= 20; i++) await w.subscriptionService.connect(`conn-${i}`, "good");
    const error = await caught(w.subscriptionService.connect("conn-21", "good"));
    expect(error).toMatchObject({ kind: "rate_limited", code: "too_many_connections" });
    expect(w.registry.connections.has("conn-21")).toBe(false);
  });

  it("refuses a subscription beyond the per-connection limit, and does not keep it", async () => {
    const { w, connection } = setup();
    const threads = Array.from({ length: 51 }, () => w.seedThread("alice"));
    for (const t of threads.slice(0, 50)) await w.subscriptionService.subscribe(connection, t.id, {});
    const last = threads[50]?.id as string;
    const error = await caught(w.subscriptionService.subscribe(connection, last, {}));
    expect(error).toMatchObject({ kind: "rate_limited", code: "too_many_subscriptions" });
    expect(w.registry.connectionThreads.get(connection.connectionId)?.has(last)).toBe(false);
  });

  it("takes a subscribe from the user's request budget", async () => {
    const { w, thread, connection } = setup();
    w.rateLimiter.refuseFor = 3;
    const error = await caught(w.subscriptionService.subscribe(connection, thread.id, {}));
    expect(error).toMatchObject({ kind: "rate_limited", code: "rate_limited" });
    expect(w.registry.isSubscribed(connection.connectionId, thread.id)).toBe(false);
  });

  it("refuses every action once the connection's token has expired, and closes the connection", async () => {
    const { w } = setup();
    const expiring = { ...alice, expiresAt: w.clock.now() + 60_000 };
    w.verifier.tokens.set("short", expiring);
    await w.subscriptionService.connect("conn-x", "short");
    expect((await w.subscriptionService.connection("conn-x")).principal).toEqual(expiring);
    w.clock.advance(60_000);
    const error = await caught(w.subscriptionService.connection("conn-x"));
    expect(error).toMatchObject({ kind: "unauthenticated", code: "token_expired" });
    await w.subscriptionService.close("conn-x");
    expect(w.notifier.closed).toEqual(["conn-x"]);
    expect(w.registry.connections.has("conn-x")).toBe(false);
  });
});
