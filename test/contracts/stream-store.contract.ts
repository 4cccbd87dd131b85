/**
 * The rules of a streamed reply's live state, written once. The same cases run against the
 * in-memory fake (unit project) and the Redis adapter (integration projects, standalone and
 * cluster). The message cache is there to make the opened reply visible, as the accept path does.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fingerprintOf, idempotencyKey, messageIdFor } from "../../lambdas/core/ids.ts";
import { type Message, type Thread, toEpochSeconds } from "../../lambdas/core/model.ts";
import type {
  ConnectionRegistry,
  MessageCache,
  StreamLimits,
  StreamStore,
} from "../../lambdas/core/ports.ts";
import type { ContractClock } from "./message-cache.contract.ts";

export interface StreamHarness {
  readonly streams: StreamStore;
  readonly cache: MessageCache;
  readonly registry: ConnectionRegistry;
  readonly clock: ContractClock;
  /** The hot tier loses everything. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

const OWNER = "alice";
const AGENT = "agent";
const LIMITS: StreamLimits = { maxDeltas: 5, maxBytes: 40, idleTimeoutMs: 10_000 };

export const streamStoreContract = (name: string, make: () => Promise<StreamHarness>): void => {
  describe(`StreamStore contract: ${name}`, () => {
    let h: StreamHarness;
    let thread: Thread;

    beforeAll(async () => {
      h = await make();
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      h.clock.set(Date.now());
      const ms = Date.now();
      thread = {
        id: randomUUID(),
        owner_id: OWNER,
        title: null,
        metadata: {},
        created_at: toEpochSeconds(ms),
        created_at_ms: ms,
      };
      await h.cache.install({ thread, lastSeq: 0, genesis: true });
    });

    /** Opens a reply as the accept path does: reserved, made visible, then held as a stream. */
    const openReply = async (): Promise<Message> => {
      const clientId = randomUUID();
      const fingerprint = fingerprintOf({ role: "assistant", content: "", metadata: {}, state: "streaming" });
      const token = randomUUID();
      const key = idempotencyKey(AGENT, clientId);
      const r = await h.cache.reserve({
        threadId: thread.id,
        idempotencyKey: key,
        clientSupplied: true,
        fingerprint,
        token,
        ownerId: null,
        nowMs: h.clock.now(),
      });
      if (r.kind !== "reserved") throw new Error(`expected a reservation, got ${r.kind}`);
      const opened: Message = {
        id: messageIdFor(thread.id, AGENT, clientId),
        thread_id: thread.id,
        seq: r.seq,
        role: "assistant",
        user_id: AGENT,
        content: "",
        metadata: {},
        client_message_id: clientId,
        created_at: toEpochSeconds(r.createdAtMs),
        created_at_ms: r.createdAtMs,
        state: "streaming",
      };
      const s = await h.cache.store(opened, {
        ownerId: OWNER,
        idempotencyKey: key,
        fingerprint,
        token,
        queued: true,
      });
      if (s.kind !== "visible") throw new Error(`expected visible, got ${s.kind}`);
      await h.streams.open(opened, null, 0);
      return opened;
    };

    const append = (m: Message, index: number, text: string, limits = LIMITS) =>
      h.streams.append(m.thread_id, m.id, { index, text }, limits);

    /** A final message in its canonical form (as StreamService builds it: no null fields). */
    const finalOf = (
      m: Message,
      content: string,
      state: "complete" | "cancelled" | "error" = "complete",
    ): Message => ({
      ...m,
      content,
      state,
      finish_reason: state === "complete" ? "stop" : state,
      first_delta_ms: 1,
      duration_ms: 2,
    });

    it("holds a new stream with no delta yet, and lists it among the thread's open streams", async () => {
      const m = await openReply();
      const s = await h.streams.snapshot(thread.id, m.id);
      expect(s).toMatchObject({
        state: "streaming",
        deltaIndex: -1,
        content: "",
        deltaCount: 0,
        final: null,
      });
      expect(s?.opened).toEqual(m);
      expect((await h.streams.openStreams(thread.id)).map((o) => o.messageId)).toEqual([m.id]);
    });

    it("appends deltas in index order, joins them, and answers the subscribers read with each", async () => {
      const m = await openReply();
      await h.registry.register({
        connectionId: "c1",
        principal: { userId: OWNER, roles: [] },
        connectedAt: 0,
      });
      await h.cache.follow(thread.id, "c1", null, 10);
      expect(await append(m, 0, "Hel")).toEqual({ kind: "appended", subscribers: ["c1"] });
      expect(await append(m, 1, "lo")).toEqual({ kind: "appended", subscribers: ["c1"] });
      expect(await h.streams.snapshot(thread.id, m.id)).toMatchObject({
        deltaIndex: 1,
        content: "Hello",
        deltaCount: 2,
        bytes: 5,
      });
    });

    it("answers a repeated index as a duplicate without appending it again", async () => {
      const m = await openReply();
      await h.registry.register({
        connectionId: "c9",
        principal: { userId: OWNER, roles: [] },
        connectedAt: 0,
      });
      await h.cache.follow(thread.id, "c9", null, 10);
      await append(m, 0, "a");
      await append(m, 1, "b");
      expect(await append(m, 0, "a")).toEqual({ kind: "duplicate" });
      // The last delta again, with its text: a retry after a timeout; its subscribers get it again.
      expect(await append(m, 1, "b")).toEqual({ kind: "duplicate", resend: ["c9"] });
      expect(await append(m, 1, "other")).toEqual({ kind: "duplicate" });
      expect((await h.streams.snapshot(thread.id, m.id))?.content).toBe("ab");
    });

    it("refuses an index beyond the next one, naming the next", async () => {
      const m = await openReply();
      await append(m, 0, "a");
      expect(await append(m, 2, "c")).toEqual({ kind: "out_of_order", expected: 1 });
      expect((await h.streams.snapshot(thread.id, m.id))?.deltaIndex).toBe(0);
    });

    it("refuses a delta over the count or byte budget, appending nothing", async () => {
      const m = await openReply();
      expect(await append(m, 0, "x".repeat(41))).toEqual({ kind: "too_large" });
      for (let i = 0; i < 5; i++) expect((await append(m, i, "y")).kind).toBe("appended");
      expect(await append(m, 5, "y")).toEqual({ kind: "too_large" });
      expect(await h.streams.snapshot(thread.id, m.id)).toMatchObject({ deltaCount: 5, content: "yyyyy" });
    });

    it("measures the byte budget as a queue record carries the text (JSON-escaped: an emoji counts 12)", async () => {
      const m = await openReply();
      expect((await append(m, 0, "é".repeat(20))).kind).toBe("appended");
      expect(await append(m, 1, "é")).toEqual({ kind: "too_large" });
      expect((await h.streams.snapshot(thread.id, m.id))?.bytes).toBe(40);
      const n = await openReply();
      expect((await append(n, 0, "😀😀😀")).kind).toBe("appended");
      expect(await append(n, 1, "😀")).toEqual({ kind: "too_large" });
      expect(await append(n, 1, '"')).toMatchObject({ kind: "appended" });
      expect((await h.streams.snapshot(thread.id, n.id))?.bytes).toBe(38);
    });

    it("says a stream idle past the timeout is idle, and does not append to it", async () => {
      const m = await openReply();
      await append(m, 0, "a");
      h.clock.advance(LIMITS.idleTimeoutMs + 1);
      expect(await append(m, 1, "b")).toEqual({ kind: "idle" });
      expect((await h.streams.snapshot(thread.id, m.id))?.content).toBe("a");
    });

    it("records when the first delta came and when the last one did", async () => {
      const m = await openReply();
      const t0 = h.clock.now();
      h.clock.advance(250);
      await append(m, 0, "a");
      h.clock.advance(100);
      await append(m, 1, "b");
      const s = await h.streams.snapshot(thread.id, m.id);
      expect(s?.firstDeltaAtMs).toBe(t0 + 250);
      expect(s?.lastAppendAtMs).toBe(t0 + 350);
      expect(s?.openedAtMs).toBe(m.created_at_ms);
    });

    it("ends once: the final message replaces the opened one in the index and the lookup by id", async () => {
      const m = await openReply();
      await append(m, 0, "done");
      const final = finalOf(m, "done");
      expect((await h.streams.finish(final, OWNER, 0)).kind).toBe("finished");
      const page = await h.cache.history(thread.id, { direction: "backward", limit: 10 });
      expect(page?.rows).toEqual([final]);
      expect(await h.cache.getMessage(m.id)).toEqual({ message: final, ownerId: OWNER });
      // The content lives in the final message now.
      expect(await h.streams.snapshot(thread.id, m.id)).toMatchObject({
        state: "complete",
        final,
        content: "",
      });
      expect(await h.streams.openStreams(thread.id)).toEqual([]);
    });

    it("tells a second ending which one won, and refuses deltas after the end", async () => {
      const m = await openReply();
      const cancelled = finalOf(m, "", "cancelled");
      expect((await h.streams.finish(cancelled, OWNER, -1)).kind).toBe("finished");
      expect(await h.streams.finish(finalOf(m, "late"), OWNER, -1)).toEqual({
        kind: "ended",
        state: "cancelled",
        final: cancelled,
        subscribers: [],
      });
      expect(await append(m, 0, "a")).toEqual({ kind: "not_streaming", state: "cancelled" });
    });

    it("lists the replies that ended at or after a stream position, oldest ending first, with their final form", async () => {
      const early = await openReply();
      const earlyFinal = finalOf(early, "early");
      await h.streams.finish(earlyFinal, OWNER, -1);
      const late = await openReply(); // made visible: the thread's position moves on
      const positionAfterLate = (await h.cache.history(thread.id, { direction: "backward", limit: 1 }))
        ?.position.pos;
      const lateFinal = finalOf(late, "late", "cancelled");
      await h.streams.finish(lateFinal, OWNER, -1);
      expect(await h.streams.endedSince(thread.id, 0, 10)).toEqual([earlyFinal, lateFinal]);
      expect(await h.streams.endedSince(thread.id, positionAfterLate as number, 10)).toEqual([lateFinal]);
      expect(await h.streams.endedSince(thread.id, (positionAfterLate as number) + 1, 10)).toEqual([]);
      expect(await h.streams.endedSince(thread.id, 0, 1)).toEqual([earlyFinal]);
    });

    it("refuses to end from a snapshot older than the last delta", async () => {
      const m = await openReply();
      await append(m, 0, "a");
      await append(m, 1, "b");
      expect(await h.streams.finish(finalOf(m, "a"), OWNER, 0)).toEqual({ kind: "changed" });
      expect((await h.streams.snapshot(thread.id, m.id))?.state).toBe("streaming");
    });

    it("keeps a stream held already when it is opened again", async () => {
      const m = await openReply();
      await append(m, 0, "a");
      await h.streams.open(m, OWNER, 0);
      expect((await h.streams.snapshot(thread.id, m.id))?.content).toBe("a");
    });

    it("after a loss: nothing held; opened again at a later index it takes that index next", async () => {
      const m = await openReply();
      await append(m, 0, "a");
      await h.flush();
      expect(await h.streams.snapshot(thread.id, m.id)).toBeNull();
      expect(await append(m, 1, "b")).toEqual({ kind: "missing" });
      expect(await h.streams.finish(finalOf(m, "x"), OWNER, 0)).toEqual({ kind: "missing" });
      await h.streams.open(m, OWNER, 1);
      expect(await append(m, 1, "b")).toMatchObject({ kind: "appended" });
      expect(await h.streams.snapshot(thread.id, m.id)).toMatchObject({
        baseIndex: 1,
        deltaIndex: 1,
        content: "b",
      });
      expect(await h.cache.getMessage(m.id)).toEqual({ message: m, ownerId: OWNER });
    });
  });
};
