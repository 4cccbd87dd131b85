import { describe, expect, it } from "vitest";
import { type Message, toWire } from "../../lambdas/core/model.ts";
import { createWorld, makeMessage, postInput, user } from "../support/fakes.ts";

const alice = user("alice");

/** A world whose outbox holds `n` messages committed synchronously. */
const setup = (n: number, batchSize: number) => {
  const w = createWorld({ outboxBatchSize: batchSize });
  const thread = w.seedThread("alice");
  const list: Message[] = Array.from({ length: n }, (_, i) => makeMessage(thread, i + 1));
  w.messages.put(...list);
  w.messages.outbox.push(...list.map((m) => m.id));
  return { w, list };
};

describe("OutboxRelay.drain", () => {
  it("forwards pending messages in batches until none are left, and clears them", async () => {
    const { w, list } = setup(5, 2);

    expect(await w.outboxRelay.drain(10)).toEqual({ forwarded: 5, deferred: 0, parked: 0 });

    expect(w.analytics.batches).toEqual([list.slice(0, 2), list.slice(2, 4), list.slice(4)]);
    expect(w.messages.outbox).toEqual([]);
    // The short third batch shows there is nothing more: no fourth query.
    expect(w.messages.callsTo("pendingOutbox")).toEqual([[2], [2], [2]]);
  });

  it("leaves a reply still streaming out of the analytics batch (its final form is archived), and clears it", async () => {
    const { w, list } = setup(3, 10);
    const opened = { ...list[1], content: "", state: "streaming" } as Message;
    w.messages.put(opened);

    expect(await w.outboxRelay.drain(10)).toEqual({ forwarded: 3, deferred: 0, parked: 0 });

    expect(w.analytics.batches).toEqual([[list[0], list[2]]]);
    expect(w.messages.outbox).toEqual([]);
  });

  it("stops after maxBatches and leaves the rest for the next run", async () => {
    const { w, list } = setup(5, 2);
    expect((await w.outboxRelay.drain(2)).forwarded).toBe(4);
    expect(w.messages.outbox).toEqual([list[4]?.id]);
  });

  it("asks once more after a full batch, and forwards nothing when nothing is pending", async () => {
    const { w } = setup(2, 2);
    expect((await w.outboxRelay.drain(10)).forwarded).toBe(2);
    expect(w.messages.callsTo("pendingOutbox")).toHaveLength(2);
    expect(w.analytics.batches).toHaveLength(1);

    expect((await w.outboxRelay.drain(10)).forwarded).toBe(0);
    expect(w.analytics.batches).toHaveLength(1);
  });

  it("keeps the messages in the outbox when they cannot be published", async () => {
    const { w, list } = setup(3, 10);
    w.analytics.down = true;
    await expect(w.outboxRelay.drain(10)).rejects.toThrow("sqs unavailable: down");
    expect(w.messages.outbox).toEqual(list.map((m) => m.id));
    expect(w.messages.callsTo("clearOutbox")).toEqual([]);
  });

  it("relays what a synchronous commit put in the outbox", async () => {
    const w = createWorld({ mode: "sync" });
    const thread = w.cachedThread("alice");
    const { message } = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    expect((await w.outboxRelay.drain(1)).forwarded).toBe(1);
    expect(w.analytics.batches).toEqual([[message]]);
    expect(w.messages.outbox).toEqual([]);
  });

  it("publishes, then confirms to the hot tier, then clears", async () => {
    const { w, list } = setup(2, 10);
    await w.outboxRelay.drain(1);
    const order = [...w.analytics.calls, ...w.cache.calls, ...w.messages.calls]
      .map((c) => c.method)
      .filter((m) => m !== "pendingOutbox" && m !== "parkedOutbox");
    expect(order).toEqual(["publish", "refresh", "clearOutbox"]);
    expect(w.cache.callsTo("refresh")).toEqual([[list]]);
  });

  it("keeps the messages in the outbox, published but unconfirmed, when the hot tier cannot be told", async () => {
    const { w, list } = setup(2, 10);
    w.cache.down = true;
    await expect(w.outboxRelay.drain(10)).rejects.toThrow("redis unavailable: down");
    expect(w.analytics.batches).toEqual([list]);
    expect(w.messages.outbox).toEqual(list.map((m) => m.id));

    w.cache.heal();
    expect((await w.outboxRelay.drain(10)).forwarded).toBe(2);
    expect(w.messages.outbox).toEqual([]);
  });

  describe("an entry that fails on its own (not an outage)", () => {
    const POLICY = { maxAttempts: 3, baseDelaySeconds: 60, maxDelaySeconds: 3600 };
    const withPoison = () => {
      const { w, list } = setup(5, 10);
      const poison = list[2] as Message;
      w.analytics.rejectIds.add(poison.id);
      const relay = w.outboxRelayWith(POLICY);
      return { w, list, poison, relay };
    };

    it("does not hold back the others: they are forwarded one by one, it is deferred", async () => {
      const { w, list, poison, relay } = withPoison();

      expect(await relay.drain(10)).toEqual({ forwarded: 4, deferred: 1, parked: 0 });

      expect(w.messages.outbox).toEqual([poison.id]);
      expect(w.analytics.batches).toEqual(list.filter((m) => m !== poison).map((m) => [m]));
      expect(w.messages.outboxRetries.get(poison.id)).toEqual({
        attempts: 1,
        dueAt: w.clock.now() + 60_000,
        lastError: `cannot publish ${poison.id}`,
      });
      expect(w.diagnostics.messages()).toContain("outbox entry failed on its own; deferred");
    });

    it("is not tried again before its delay, which doubles, and is parked after maxAttempts", async () => {
      const { w, poison, relay } = withPoison();
      await relay.drain(10);
      const tries = () => w.analytics.calls.filter((c) => JSON.stringify(c.args).includes(poison.id)).length;
      const first = tries();

      expect(await relay.drain(10)).toEqual({ forwarded: 0, deferred: 0, parked: 0 });
      expect(tries()).toBe(first);

      w.clock.advance(60_000);
      expect(await relay.drain(10)).toEqual({ forwarded: 0, deferred: 1, parked: 0 });
      expect(w.messages.outboxRetries.get(poison.id)?.dueAt).toBe(w.clock.now() + 120_000);

      w.clock.advance(120_000);
      expect(await relay.drain(10)).toEqual({ forwarded: 0, deferred: 1, parked: 1 });
      w.clock.advance(24 * 3600_000);
      const before = tries();
      expect(await relay.drain(10)).toEqual({ forwarded: 0, deferred: 0, parked: 1 });
      expect(tries()).toBe(before);
      // Parked, not lost: still in the outbox for an operator to release.
      expect(w.messages.outbox).toEqual([poison.id]);
    });

    it("is forwarded and cleared once it succeeds", async () => {
      const { w, poison, relay } = withPoison();
      await relay.drain(10);
      w.analytics.rejectIds.delete(poison.id);
      w.clock.advance(60_000);
      expect(await relay.drain(10)).toEqual({ forwarded: 1, deferred: 0, parked: 0 });
      expect(w.messages.outbox).toEqual([]);
      expect(w.messages.outboxRetries.size).toBe(0);
    });

    it("blames no entry for an outage: the run stops and nothing is deferred", async () => {
      const { w, relay } = withPoison();
      w.analytics.down = true;
      await expect(relay.drain(10)).rejects.toThrow("sqs unavailable: down");
      expect(w.messages.callsTo("deferOutbox")).toEqual([]);
    });
  });

  it.each(["queued", "sync"] as const)(
    "makes visible the messages committed while the hot tier was unreachable (%s mode)",
    async (mode) => {
      const w = createWorld({ mode });
      const thread = w.cachedThread("alice");
      w.cache.down = true;
      const { message, cache } = await w.acceptor.accept({
        principal: alice,
        threadId: thread.id,
        input: postInput("x"),
      });
      expect(cache).toBe("skipped");
      w.cache.heal();

      await w.outboxRelay.drain(1);

      expect(w.cache.cachedSeqs(thread.id)).toEqual([message.seq]);
      const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 10 });
      expect(page).toMatchObject({ source: "cache", value: { messages: [message] } });
    },
  );

  it("pushes the messages it makes visible to the thread's subscribers, like the persist consumer", async () => {
    // events.ts announceLate: "Messages made visible late (by the persist consumer or the outbox
    // relay) go to the subscribers like any live message, each with its own position."
    const w = createWorld({ mode: "sync" });
    const thread = w.cachedThread("alice");
    w.registry.addSubscription("conn-bob", thread.id);
    w.cache.down = true;
    const { message } = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("x"),
    });
    w.cache.heal();

    await w.outboxRelay.drain(1);

    expect(w.notifier.eventsFor("conn-bob")).toEqual([
      {
        type: "message.created",
        epoch: w.cache.states.get(thread.id)?.epoch,
        pos: 1,
        settled: w.settled(),
        message: toWire(message),
      },
    ]);
  });
});
