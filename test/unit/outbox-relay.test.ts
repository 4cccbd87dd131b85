import { describe, expect, it } from "vitest";
import type { Message } from "../../lambdas/core/model.ts";
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

    expect(await w.outboxRelay.drain(10)).toBe(5);

    expect(w.analytics.batches).toEqual([list.slice(0, 2), list.slice(2, 4), list.slice(4)]);
    expect(w.messages.outbox).toEqual([]);
    // The short third batch shows there is nothing more: no fourth query.
    expect(w.messages.callsTo("pendingOutbox")).toEqual([[2], [2], [2]]);
  });

  it("stops after maxBatches and leaves the rest for the next run", async () => {
    const { w, list } = setup(5, 2);
    expect(await w.outboxRelay.drain(2)).toBe(4);
    expect(w.messages.outbox).toEqual([list[4]?.id]);
  });

  it("asks once more after a full batch, and forwards nothing when nothing is pending", async () => {
    const { w } = setup(2, 2);
    expect(await w.outboxRelay.drain(10)).toBe(2);
    expect(w.messages.callsTo("pendingOutbox")).toHaveLength(2);
    expect(w.analytics.batches).toHaveLength(1);

    expect(await w.outboxRelay.drain(10)).toBe(0);
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
    expect(await w.outboxRelay.drain(1)).toBe(1);
    expect(w.analytics.batches).toEqual([[message]]);
    expect(w.messages.outbox).toEqual([]);
  });

  it("publishes, then confirms to the hot tier, then clears", async () => {
    const { w, list } = setup(2, 10);
    await w.outboxRelay.drain(1);
    const order = [...w.analytics.calls, ...w.cache.calls, ...w.messages.calls]
      .map((c) => c.method)
      .filter((m) => m !== "pendingOutbox");
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
    expect(await w.outboxRelay.drain(10)).toBe(2);
    expect(w.messages.outbox).toEqual([]);
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
        message,
      },
    ]);
  });
});
