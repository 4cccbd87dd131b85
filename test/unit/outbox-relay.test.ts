import { describe, expect, it } from "vitest";
import type { Message } from "../../lambdas/core/model.ts";
import { createWorld, makeMessage } from "../support/fakes.ts";

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
    const thread = w.seedThread("alice");
    const { message } = await w.messageService.accept({
      principal: { userId: "alice", roles: [] },
      threadId: thread.id,
      input: { content: "x", metadata: {}, clientMessageId: undefined, role: undefined },
    });
    expect(await w.outboxRelay.drain(1)).toBe(1);
    expect(w.analytics.batches).toEqual([[message]]);
  });
});
