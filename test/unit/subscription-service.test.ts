import { describe, expect, it } from "vitest";
import {
  AppError,
  NotFoundError,
  ServiceUnavailableError,
  UnauthorizedError,
} from "../../lambdas/core/errors.ts";
import type { Message } from "../../lambdas/core/model.ts";
import type { Connection } from "../../lambdas/core/ports.ts";
import { createWorld, makeMessage, user } from "../support/fakes.ts";
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

describe("SubscriptionService.subscribe", () => {
  it("registers the subscription before it replays anything", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10, 11]);
    const subscribedAtSend: boolean[] = [];
    w.notifier.onSend = () => subscribedAtSend.push(w.registry.isSubscribed("conn-1", thread.id));

    await w.subscriptionService.subscribe(connection, thread.id, 0);

    expect(subscribedAtSend).toEqual([true, true, true]);
  });

  it("replays the missed messages in seq order, then sends a subscribed frame with the counts", async () => {
    const { w, thread, connection } = setup();
    const list = seedMessages(w, thread.id, [10, 11, 12, 13]);

    const result = await w.subscriptionService.subscribe(connection, thread.id, 10, "req-7");

    expect(result).toEqual({ replayed: 3, hasMore: false });
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      { type: "message.created", replay: true, message: list[1] },
      { type: "message.created", replay: true, message: list[2] },
      { type: "message.created", replay: true, message: list[3] },
      { type: "subscribed", threadId: thread.id, replayed: 3, has_more: false, request_id: "req-7" },
    ]);
  });

  it("replays at most replayLimit messages and says where to continue", async () => {
    const { w, thread, connection } = setup({ replayLimit: 2 });
    const list = seedMessages(w, thread.id, [10, 11, 12, 13]);

    const result = await w.subscriptionService.subscribe(connection, thread.id, 0);

    expect(result).toEqual({ replayed: 2, hasMore: true });
    const events = w.notifier.eventsFor("conn-1");
    expect(events.slice(0, 2).map((e) => e.message)).toEqual(list.slice(0, 2));
    expect(events[2]).toEqual({
      type: "subscribed",
      threadId: thread.id,
      replayed: 2,
      has_more: true,
      next_cursor: 11,
    });
  });

  it("sends only the subscribed frame when no sinceSeq is given", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10]);
    expect(await w.subscriptionService.subscribe(connection, thread.id, undefined)).toEqual({
      replayed: 0,
      hasMore: false,
    });
    expect(w.notifier.eventsFor("conn-1")).toEqual([
      { type: "subscribed", threadId: thread.id, replayed: 0, has_more: false },
    ]);
    expect(w.registry.isSubscribed("conn-1", thread.id)).toBe(true);
  });

  it("stops replaying when the connection is gone, without a subscribed frame", async () => {
    const { w, thread, connection } = setup();
    seedMessages(w, thread.id, [10, 11, 12]);
    let sends = 0;
    w.notifier.onSend = () => {
      if (++sends === 2) w.notifier.gone.add("conn-1");
    };

    expect(await w.subscriptionService.subscribe(connection, thread.id, 0)).toEqual({
      replayed: 1,
      hasMore: true,
    });
    expect(w.notifier.callsTo("send")).toHaveLength(2);
  });

  it("refuses another user's thread as thread_not_found and does not subscribe", async () => {
    const { w, thread } = setup();
    const bobs: Connection = { connectionId: "conn-bob", principal: user("bob"), connectedAt: 0 };
    const error = await caught(w.subscriptionService.subscribe(bobs, thread.id, 0));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ code: "thread_not_found" });
    expect(w.registry.isSubscribed("conn-bob", thread.id)).toBe(false);
    expect(w.notifier.calls).toEqual([]);
  });

  it("answers 503 when the registry cannot record the subscription", async () => {
    const { w, thread, connection } = setup();
    w.registry.fail("subscribe");
    expect(await caught(w.subscriptionService.subscribe(connection, thread.id, 0))).toBeInstanceOf(
      ServiceUnavailableError,
    );
    expect(w.notifier.calls).toEqual([]);
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
