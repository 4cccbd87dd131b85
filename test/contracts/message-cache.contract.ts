/**
 * The hot tier's rules, written once. The same cases run against the in-memory fake (unit project)
 * and the Redis adapter (integration projects, standalone and cluster): a fake can no longer drift
 * from the adapter it stands for. Times that matter (leases, the persist bound, the restore hold)
 * come from the harness clock; the seq's clock component comes from the hot tier itself.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fingerprintOf, idempotencyKey, messageIdFor } from "../../lambdas/core/ids.ts";
import type { StreamPosition } from "../../lambdas/core/model.ts";
import { type Message, type Thread, toEpochSeconds } from "../../lambdas/core/model.ts";
import type {
  Clock,
  ConnectionRegistry,
  HotTierEraser,
  MessageCache,
  ReserveInput,
  StoreResult,
} from "../../lambdas/core/ports.ts";

export interface ContractClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export interface CacheHarness {
  readonly cache: MessageCache;
  readonly clock: ContractClock;
  /** What the hot tier was built with. */
  readonly options: {
    readonly historySize: number;
    readonly persistBoundMs: number;
    readonly leaseMs: number;
    readonly idempotencyTtlSeconds: number;
    readonly logSize: number;
  };
  /** The connection registry over the same hot tier (it leaves the subscriber sets `follow` joins). */
  readonly registry: ConnectionRegistry;
  /** Erases threads from the same hot tier. */
  readonly eraser: HotTierEraser;
  /** The hot tier loses everything (restart, FLUSHALL, failover without the data). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export const CONTRACT_OPTIONS = {
  historySize: 5,
  persistBoundMs: 60_000,
  leaseMs: 10_000,
  idempotencyTtlSeconds: 3600,
  logSize: 6,
} as const;

const OWNER = "alice";

const newThread = (owner = OWNER): Thread => {
  const ms = Date.now();
  return {
    id: randomUUID(),
    owner_id: owner,
    title: "t",
    metadata: {},
    created_at: toEpochSeconds(ms),
    created_at_ms: ms,
  };
};

export const messageCacheContract = (name: string, make: () => Promise<CacheHarness>): void => {
  describe(`MessageCache contract: ${name}`, () => {
    let h: CacheHarness;
    let thread: Thread;
    let counter = 0;

    beforeAll(async () => {
      h = await make();
    });
    afterAll(async () => {
      await h.close();
    });
    beforeEach(async () => {
      // Near the hot tier's own clock (it stamps seqs), whatever earlier cases advanced.
      h.clock.set(Date.now());
      thread = newThread();
      await h.cache.install({ thread, lastSeq: 0, genesis: true });
    });

    /** One try of a message: its key, content and token. */
    const attempt = (overrides: Partial<ReserveInput> & { content?: string; clientId?: string } = {}) => {
      const clientId = overrides.clientId ?? `c-${++counter}`;
      const content = overrides.content ?? `hello ${clientId}`;
      const input: ReserveInput = {
        threadId: thread.id,
        idempotencyKey: idempotencyKey(OWNER, clientId),
        clientSupplied: true,
        fingerprint: fingerprintOf({ role: "user", content, metadata: {} }),
        token: randomUUID(),
        ownerId: OWNER,
        nowMs: h.clock.now(),
        ...overrides,
      };
      return { input, clientId, content };
    };

    const reserve = async (a: ReturnType<typeof attempt>) => {
      const r = await h.cache.reserve(a.input);
      if (r.kind !== "reserved") throw new Error(`expected a reservation, got ${r.kind}`);
      return r;
    };

    const messageOf = (a: ReturnType<typeof attempt>, seq: number, createdAtMs: number): Message => ({
      id: messageIdFor(a.input.threadId, OWNER, a.clientId),
      thread_id: a.input.threadId,
      seq,
      role: "user",
      user_id: OWNER,
      content: a.content,
      metadata: {},
      client_message_id: a.clientId,
      created_at: toEpochSeconds(createdAtMs),
      created_at_ms: createdAtMs,
    });

    const store = async (a: ReturnType<typeof attempt>, m: Message, queued = true): Promise<StoreResult> =>
      h.cache.store(m, {
        ownerId: OWNER,
        idempotencyKey: a.input.idempotencyKey,
        fingerprint: a.input.fingerprint,
        token: a.input.token,
        queued,
      });

    /** Reserves and stores one message; returns it with where it became visible. */
    const post = async (queued = true) => {
      const a = attempt();
      const r = await reserve(a);
      const m = messageOf(a, r.seq, r.createdAtMs);
      const s = await store(a, m, queued);
      if (s.kind !== "visible") throw new Error(`expected visible, got ${s.kind}`);
      return { a, m, s };
    };

    const newest = async (limit = 50) => {
      const page = await h.cache.history(thread.id, { direction: "backward", limit });
      if (page === null) throw new Error("no hot state");
      return page;
    };

    describe("threads", () => {
      it("knows an installed thread and nothing else", async () => {
        expect(await h.cache.getThread(thread.id)).toEqual(thread);
        expect(await h.cache.getThread(randomUUID())).toBeNull();
        expect(await h.cache.reserve({ ...attempt().input, threadId: randomUUID() })).toEqual({
          kind: "unknown_thread",
        });
        expect(await h.cache.history(randomUUID(), { direction: "backward", limit: 5 })).toBeNull();
        expect(await h.cache.follow(randomUUID(), "c1", null, 10)).toBeNull();
      });

      it("installing again keeps the state and updates the record", async () => {
        const { s } = await post();
        await h.cache.install({ thread: { ...thread, title: "renamed" }, lastSeq: 0, genesis: false });
        expect((await h.cache.getThread(thread.id))?.title).toBe("renamed");
        const following = await h.cache.follow(thread.id, "c-keep", null, 10);
        expect(following?.position).toEqual(s.position);
      });

      it("forgets the record of a changed thread, keeping the state, and answers its subscribers", async () => {
        const { s } = await post();
        await h.cache.follow(thread.id, "c-upd", null, 10);
        const archived = { ...thread, title: "archived", archived_at_ms: 1_800_000_000_000 };
        expect(await h.cache.updateThread(archived)).toEqual(["c-upd"]);
        expect(await h.cache.getThread(thread.id)).toBeNull();
        expect(await h.cache.reserve(attempt().input)).toEqual({ kind: "unknown_thread" });
        // Installed again (from PostgreSQL's copy): the stream position is where it was.
        await h.cache.install({ thread: archived, lastSeq: 0, genesis: false });
        expect(await h.cache.getThread(thread.id)).toEqual(archived);
        expect((await h.cache.follow(thread.id, "c-upd", null, 10))?.position).toEqual(s.position);
        // A thread the hot tier does not hold stays out of it.
        const other = { ...thread, id: randomUUID() };
        expect(await h.cache.updateThread(other)).toEqual([]);
        expect(await h.cache.getThread(other.id)).toBeNull();
      });

      it("answers another owner's thread as not found; a service principal may reserve in any", async () => {
        expect((await h.cache.reserve({ ...attempt().input, ownerId: "mallory" })).kind).toBe("not_found");
        expect((await h.cache.reserve({ ...attempt().input, ownerId: null })).kind).toBe("reserved");
      });
    });

    const follow = async (connectionId: string, since: StreamPosition | null = null, limit = 10) => {
      const f = await h.cache.follow(thread.id, connectionId, since, limit);
      if (f === null) throw new Error("no hot state");
      return f;
    };

    describe("seqs and stream positions", () => {
      it("hands out strictly growing seqs", async () => {
        const seqs: number[] = [];
        for (let i = 0; i < 5; i++) seqs.push((await reserve(attempt())).seq);
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
      });

      it("numbers visible messages one by one and reads the subscribers with them", async () => {
        const start = await follow("conn-1");
        const first = await post();
        const second = await post();
        expect(first.s.position).toEqual({ epoch: start.position.epoch, pos: start.position.pos + 1 });
        expect(second.s.position.pos).toBe(start.position.pos + 2);
        expect(first.s.subscribers).toEqual(["conn-1"]);
        await h.registry.unsubscribe("conn-1", thread.id);
        expect((await post()).s.subscribers).toEqual([]);
      });

      it("numbers messages in the order they become visible, whatever their seqs", async () => {
        const start = await follow("conn-order");
        const a = attempt();
        const b = attempt();
        const ra = await reserve(a);
        const rb = await reserve(b);
        const mb = messageOf(b, rb.seq, rb.createdAtMs);
        const ma = messageOf(a, ra.seq, ra.createdAtMs);
        await store(b, mb);
        await store(a, ma);
        const again = await follow("conn-order-2", start.position);
        expect(again.replay).toEqual([
          { message: mb, pos: start.position.pos + 1 },
          { message: ma, pos: start.position.pos + 2 },
        ]);
      });

      it("replays everything visible after a position of the same epoch, atomically with joining", async () => {
        const before = (await post()).s.position;
        const missed = [(await post()).m, (await post()).m];
        const following = await follow("conn-back", before);
        expect(following.position.pos).toBe(before.pos + 2);
        expect(following.replay?.map((r) => r.message)).toEqual(missed);
        expect(following.replay?.map((r) => r.pos)).toEqual([before.pos + 1, before.pos + 2]);
        const next = await post();
        expect(next.s.subscribers).toContain("conn-back");
        expect((await follow("conn-now", next.s.position)).replay).toEqual([]);
      });

      it("cannot replay a position of another epoch, one further back than the limit or the log", async () => {
        const start = (await post()).s.position;
        for (let i = 0; i < 3; i++) await post();
        expect((await follow("x1", { epoch: "another", pos: start.pos })).replay).toBeNull();
        expect((await follow("x2", start, 2)).replay).toBeNull();
        expect((await follow("x3", null)).replay).toBeNull();
        expect((await follow("x4", { ...start, pos: start.pos + 99 })).replay).toBeNull();
        // The log keeps at least logSize positions (it is trimmed every few positions).
        for (let i = 0; i < h.options.logSize + 16; i++) await post();
        expect((await follow("x5", start, 100)).replay).toBeNull();
      });
    });

    const releaseOf = (a: ReturnType<typeof attempt>, seq: number) => ({
      threadId: a.input.threadId,
      seq,
      idempotencyKey: a.input.idempotencyKey,
      token: a.input.token,
      fingerprint: a.input.fingerprint,
      createdAtMs: a.input.nowMs,
    });

    describe("one message per key", () => {
      it("tells a concurrent try that the key is in progress, and its own repeated call the same seq", async () => {
        const a = attempt();
        const first = await reserve(a);
        expect((await h.cache.reserve({ ...a.input, token: randomUUID() })).kind).toBe("in_progress");
        const again = await h.cache.reserve(a.input);
        expect(again).toMatchObject({ kind: "reserved", seq: first.seq, takeover: false });
      });

      it("lets another try take over once the lease ran out, with the same seq and time", async () => {
        const a = attempt();
        const first = await reserve(a);
        h.clock.advance(h.options.leaseMs + 1);
        const taker = { ...a.input, token: randomUUID(), nowMs: h.clock.now() };
        const taken = await h.cache.reserve(taker);
        expect(taken).toMatchObject({
          kind: "reserved",
          seq: first.seq,
          createdAtMs: first.createdAtMs,
          takeover: true,
        });
        // The taker repeating its call (it timed out) is told again that it took the key over.
        expect(await h.cache.reserve(taker)).toMatchObject({
          kind: "reserved",
          seq: first.seq,
          takeover: true,
        });
      });

      it("answers every later try with the original once it is visible", async () => {
        const { a, m } = await post();
        const replay = await h.cache.reserve({ ...a.input, token: randomUUID() });
        expect(replay).toMatchObject({ kind: "replay", message: m });
        // A store by another try of the key (one that took over) finds it visible already.
        const again = await store({ ...a, input: { ...a.input, token: randomUUID() } }, m);
        expect(again).toEqual({ kind: "replay", message: m });
      });

      it("gives a try that repeats a store (its call timed out) its own position back", async () => {
        const { a, m, s: first } = await post();
        const again = await store(a, m);
        expect(again).toMatchObject({ kind: "visible", position: first.position });
        expect((await follow("after-repeat")).position).toEqual(first.position);
        expect(await store({ ...a, input: { ...a.input, token: randomUUID() } }, m)).toEqual({
          kind: "replay",
          message: m,
        });
      });

      it("refuses the key for other content", async () => {
        const { a } = await post();
        const other = attempt({ clientId: a.clientId, content: "something else" });
        expect((await h.cache.reserve(other.input)).kind).toBe("mismatch");
      });

      it("lets the next try take over an unknown outcome at once, with the same seq and time", async () => {
        const a = attempt();
        const first = await reserve(a);
        await h.cache.release({ ...releaseOf(a, first.seq), outcome: { kind: "unknown" } });
        const retry = await h.cache.reserve({ ...a.input, token: randomUUID() });
        expect(retry).toMatchObject({
          kind: "reserved",
          seq: first.seq,
          createdAtMs: first.createdAtMs,
          takeover: true,
        });
      });

      it("frees the key of an abandoned try", async () => {
        const a = attempt();
        const first = await reserve(a);
        await h.cache.release({ ...releaseOf(a, first.seq), outcome: { kind: "abandoned" } });
        const next = await h.cache.reserve({ ...a.input, token: randomUUID() });
        expect(next.kind).toBe("reserved");
        if (next.kind === "reserved") expect(next.seq).toBeGreaterThan(first.seq);
      });

      it("remembers an original found in the durable tier", async () => {
        const a = attempt();
        const r = await reserve(a);
        const original = messageOf(a, r.seq - 7, r.createdAtMs);
        await h.cache.release({ ...releaseOf(a, r.seq), outcome: { kind: "replayed", message: original } });
        // Not in the hot tier's index: the caller reads it by its id.
        expect(await h.cache.reserve({ ...a.input, token: randomUUID() })).toMatchObject({
          kind: "replay",
          message: null,
        });
      });

      it("keeps a record for a key the server made up, like any other key", async () => {
        const a = attempt({ clientSupplied: false });
        const r = await reserve(a);
        // Its try repeating a call that timed out finds its own reservation.
        expect(await h.cache.reserve(a.input)).toMatchObject({
          kind: "reserved",
          seq: r.seq,
          takeover: false,
        });
        const meanwhile = await h.cache.reserve({ ...a.input, token: randomUUID(), clientSupplied: true });
        expect(meanwhile).toEqual({ kind: "in_progress" });
        const m = messageOf(a, r.seq, r.createdAtMs);
        expect((await store(a, m)).kind).toBe("visible");
        // The answer told the client the key: sending it again is a replay.
        expect(
          await h.cache.reserve({ ...a.input, token: randomUUID(), clientSupplied: true }),
        ).toMatchObject({
          kind: "replay",
          message: m,
        });

        const b = attempt({ clientSupplied: false });
        const rb = await reserve(b);
        await h.cache.release({ ...releaseOf(b, rb.seq), outcome: { kind: "unknown" } });
        // The client retries with the key the 503 named: it takes the reservation over.
        const retry = await h.cache.reserve({ ...b.input, token: randomUUID(), clientSupplied: true });
        expect(retry).toMatchObject({
          kind: "reserved",
          seq: rb.seq,
          createdAtMs: rb.createdAtMs,
          takeover: true,
        });
      });

      it("does not ask the durable tier about keys of a thread whose state is original", async () => {
        expect((await reserve(attempt())).verify).toBe(false);
      });
    });

    describe("history and its completeness floor", () => {
      it("serves visible messages in both directions from a complete index", async () => {
        const posted = [];
        for (let i = 0; i < 3; i++) posted.push((await post()).m);
        const back = await newest();
        expect(back.floor).toBe(0);
        expect(back.position.pos).toBe((await follow("reader")).position.pos);
        expect(back.rows.map((m) => m.id)).toEqual(posted.map((m) => m.id).reverse());
        const fwd = await h.cache.history(thread.id, {
          direction: "forward",
          after: posted[0]?.seq as number,
          limit: 10,
        });
        expect(fwd?.rows.map((m) => m.id)).toEqual(posted.slice(1).map((m) => m.id));
        const before = await h.cache.history(thread.id, {
          direction: "backward",
          before: posted[2]?.seq as number,
          limit: 1,
        });
        expect(before?.rows.map((m) => m.id)).toEqual([posted[1]?.id, posted[0]?.id]);
      });

      it("keeps what PostgreSQL has not confirmed, and trims it once confirmed", async () => {
        const { historySize } = h.options;
        const posted: Message[] = [];
        for (let i = 0; i < historySize + 3; i++) posted.push((await post()).m);
        let page = await newest();
        expect(page.floor).toBe(0);
        expect(page.rows).toHaveLength(historySize + 3);
        await h.cache.refresh(posted);
        posted.push((await post()).m);
        page = await newest();
        expect(page.rows.map((m) => m.id)).toEqual(
          posted
            .slice(-historySize)
            .map((m) => m.id)
            .reverse(),
        );
        expect(page.floor).toBe(posted.at(-historySize)?.seq);
      });

      it("never raises the floor over a seq still pending", async () => {
        const { historySize } = h.options;
        const slow = attempt();
        const r = await reserve(slow);
        for (let i = 0; i < historySize + 2; i++) await post(false);
        expect((await newest()).floor).toBeLessThanOrEqual(r.seq);
        const s = await store(slow, messageOf(slow, r.seq, r.createdAtMs));
        expect(s.kind).toBe("visible");
        const fwd = await h.cache.history(thread.id, { direction: "forward", after: r.seq - 1, limit: 1 });
        expect(fwd?.floor).toBeLessThanOrEqual(r.seq);
        expect(fwd?.rows[0]?.seq).toBe(r.seq);
      });

      it("stops holding the floor for a reservation whose deadline passed", async () => {
        const { historySize } = h.options;
        const r = await reserve(attempt());
        for (let i = 0; i < historySize + 2; i++) await post(false);
        expect((await newest()).floor).toBeLessThanOrEqual(r.seq);
        h.clock.advance(h.options.persistBoundMs + 1);
        await post(false);
        expect((await newest()).floor).toBeGreaterThan(r.seq);
      });

      it("serves a forward query below the floor from the floor on", async () => {
        const { historySize } = h.options;
        const posted: Message[] = [];
        for (let i = 0; i < historySize + 2; i++) posted.push((await post(false)).m);
        const page = await newest();
        expect(page.floor).toBeGreaterThan(0);
        const fwd = await h.cache.history(thread.id, { direction: "forward", after: 0, limit: 2 });
        expect(fwd?.rows.map((m) => m.seq)).toEqual(
          posted
            .filter((m) => m.seq >= page.floor)
            .slice(0, 3)
            .map((m) => m.seq),
        );
      });

      it("warms below the floor only, and lowers the floor to what it was given", async () => {
        const stored: Message[] = [];
        for (let i = 0; i < 3; i++) stored.push((await post()).m);
        await h.flush();
        await h.cache.install({ thread, lastSeq: stored.at(-1)?.seq as number, genesis: false });
        const fresh = (await post()).m;
        const { floor } = await newest();
        expect(floor).toBeGreaterThan(stored.at(-1)?.seq as number);
        // Not below the floor: left alone (what is missing at or above the floor is not visible yet).
        await h.cache.warm(thread.id, [{ ...fresh, id: randomUUID(), seq: fresh.seq + 1 }], false);
        expect((await newest()).rows.map((m) => m.id)).toEqual([fresh.id]);
        await h.cache.warm(thread.id, stored.slice(-1), false);
        let page = await newest();
        expect(page.floor).toBe(stored.at(-1)?.seq);
        expect(page.rows.map((m) => m.id)).toEqual([fresh.id, stored.at(-1)?.id]);
        await h.cache.warm(thread.id, stored, true);
        page = await newest();
        expect(page.floor).toBe(0);
        expect(page.rows.map((m) => m.id)).toEqual([fresh, ...[...stored].reverse()].map((m) => m.id));
      });

      it("looks a visible message up by id", async () => {
        const { m } = await post();
        expect(await h.cache.getMessage(m.id)).toEqual({ message: m, ownerId: OWNER });
        expect(await h.cache.getMessage(randomUUID())).toBeNull();
      });
    });

    describe("confirmation by the persist consumer", () => {
      it("makes a durable message that never became visible visible, once, with the next pos", async () => {
        const start = await follow("conn-late");
        const lost = attempt();
        const r = await reserve(lost);
        const m = messageOf(lost, r.seq, r.createdAtMs);
        const later = await post();
        const [late, ...rest] = await h.cache.refresh([m, later.m]);
        expect(rest).toEqual([]);
        expect(late).toEqual({
          threadId: thread.id,
          epoch: start.position.epoch,
          subscribers: ["conn-late"],
          messages: [{ message: m, pos: later.s.position.pos + 1 }],
        });
        expect((await newest()).rows.map((x) => x.id)).toContain(m.id);
        expect(await h.cache.reserve({ ...lost.input, token: randomUUID() })).toMatchObject({
          kind: "replay",
        });
        expect(await h.cache.refresh([m])).toEqual([]);
        expect((await follow("conn-late-2", start.position)).replay?.map((x) => x.message.id)).toEqual([
          later.m.id,
          m.id,
        ]);
      });

      it("lets the try that holds the key answer as its creator when the consumer made it visible first", async () => {
        const a = attempt();
        const r = await reserve(a);
        const m = messageOf(a, r.seq, r.createdAtMs);
        const [late] = await h.cache.refresh([m]);
        const pos = late?.messages[0]?.pos;
        expect(await store(a, m)).toMatchObject({ kind: "visible", position: { pos } });
        expect(await store({ ...a, input: { ...a.input, token: randomUUID() } }, m)).toEqual({
          kind: "replay",
          message: m,
        });
      });

      it("makes a message with a made-up key visible when it is not in the index, and only then", async () => {
        const a = attempt({ clientSupplied: false });
        const r = await reserve(a);
        const m = messageOf(a, r.seq, r.createdAtMs);
        const [late] = await h.cache.refresh([m]);
        expect(late?.messages.map((x) => x.message)).toEqual([m]);
        expect(await h.cache.refresh([m])).toEqual([]);
        const b = attempt({ clientSupplied: false });
        const rb = await reserve(b);
        const mb = messageOf(b, rb.seq, rb.createdAtMs);
        expect((await store(b, mb)).kind).toBe("visible");
        expect(await h.cache.refresh([mb])).toEqual([]);
      });

      it("serves commands issued in the same moment as confirmations of any size", async () => {
        const posted: Message[] = [];
        for (let i = 0; i < 6; i += 1) posted.push((await post()).m);
        // Confirmations take one key per message; other commands go out alongside them.
        const [refreshes, lookups] = await Promise.all([
          Promise.all(posted.map((_, i) => h.cache.refresh(posted.slice(0, i + 1)))),
          Promise.all(Array.from({ length: 48 }, (_, i) => h.registry.get(`conn-same-moment-${i}`))),
        ]);
        expect(refreshes.flat()).toEqual([]);
        expect(lookups).toEqual(Array.from({ length: 48 }, () => null));
      });

      it("does not make a message visible below the floor of a state made anew since its reservation", async () => {
        const a = attempt();
        const r = await reserve(a);
        await h.flush();
        await h.cache.install({ thread, lastSeq: r.seq + 1000, genesis: false });
        expect(await store(a, messageOf(a, r.seq, r.createdAtMs))).toEqual({ kind: "lost" });
        expect((await newest()).rows).toEqual([]);
      });

      it("makes a confirmed message visible that the index lacks at or above the floor, whatever its key's record says", async () => {
        // Its key's record was completed (a retry found it in PostgreSQL) while a read warmed the
        // range below the floor from PostgreSQL before the message reached it.
        const stored = await post();
        await h.flush();
        await h.cache.install({ thread, lastSeq: stored.m.seq + 1000, genesis: false });
        const a = attempt();
        const r = await reserve(a);
        const m = messageOf(a, stored.m.seq + 1, r.createdAtMs);
        await h.cache.release({ ...releaseOf(a, r.seq), outcome: { kind: "replayed", message: m } });
        await h.cache.warm(thread.id, [stored.m], false);
        const [late] = await h.cache.refresh([m]);
        expect(late?.messages.map((x) => x.message)).toEqual([m]);
        expect((await newest()).rows.map((x) => x.id)).toContain(m.id);
      });

      it("makes a message accepted without the hot tier visible (its key has no record)", async () => {
        const a = attempt();
        const m = messageOf(a, (h.clock.now() + 5) * 1000 + 500, h.clock.now());
        const [late] = await h.cache.refresh([m]);
        expect(late?.messages.map((x) => x.message)).toEqual([m]);
        expect((await newest()).rows[0]).toEqual(m);
      });

      it("corrects a message shown with another seq than PostgreSQL kept", async () => {
        const { a, m, s: shown } = await post();
        const stored = { ...m, seq: m.seq - 3 };
        const [late] = await h.cache.refresh([stored]);
        expect(late?.messages).toEqual([{ message: stored, pos: shown.position.pos + 1 }]);
        const rows = (await newest()).rows.filter((x) => x.id === m.id);
        expect(rows).toEqual([stored]);
        expect(await h.cache.reserve({ ...a.input, token: randomUUID() })).toMatchObject({
          kind: "replay",
          message: stored,
        });
        expect(await h.cache.refresh([stored])).toEqual([]);
      });

      it("ignores confirmations of messages it made visible, also after the index dropped them", async () => {
        const { historySize } = h.options;
        const posted: Message[] = [];
        for (let i = 0; i < historySize + 2; i++) posted.push((await post(false)).m);
        expect(await h.cache.refresh(posted)).toEqual([]);
      });

      it("does nothing for a thread without hot state", async () => {
        const { m } = await post();
        await h.flush();
        expect(await h.cache.refresh([m])).toEqual([]);
      });
    });

    describe("the connection registry", () => {
      it("remembers a connection's principal until it is removed", async () => {
        const connectionId = `conn-${randomUUID()}`;
        const principal = { userId: OWNER, roles: [] };
        await h.registry.register({ connectionId, principal, connectedAt: 123 });
        expect(await h.registry.get(connectionId)).toEqual({ connectionId, principal, connectedAt: 123 });
        expect(await h.registry.get(`conn-${randomUUID()}`)).toBeNull();
        await h.registry.remove(connectionId);
        expect(await h.registry.get(connectionId)).toBeNull();
      });

      it("takes a removed connection off every thread it followed", async () => {
        const connectionId = `conn-${randomUUID()}`;
        await h.registry.register({ connectionId, principal: { userId: OWNER, roles: [] }, connectedAt: 1 });
        await h.registry.subscribe(connectionId, thread.id);
        await follow(connectionId);
        await follow("someone-else");
        expect((await post()).s.subscribers).toEqual(expect.arrayContaining([connectionId, "someone-else"]));
        await h.registry.remove(connectionId);
        expect((await post()).s.subscribers).toEqual(["someone-else"]);
      });
    });

    describe("losing the hot state", () => {
      it("starts a new epoch above everything allocated before; messages in flight become visible in it", async () => {
        const before = await post();
        await h.flush();
        expect(await store(before.a, before.m)).toEqual({ kind: "lost" });
        await h.cache.install({ thread, lastSeq: before.m.seq, genesis: false });
        const following = await follow("conn-new", before.s.position);
        expect(following.position.epoch).not.toBe(before.s.position.epoch);
        expect(following.replay).toBeNull();
        const after = await post();
        expect(after.m.seq).toBeGreaterThan(before.m.seq);
        expect((await newest()).floor).toBeGreaterThan(before.m.seq);
        // A message that was on the persist queue when the state was lost shows up, late.
        const inFlight = messageOf(attempt(), before.m.seq - 1, h.clock.now());
        const [late] = await h.cache.refresh([inFlight]);
        expect(late?.messages).toEqual([{ message: inFlight, pos: after.s.position.pos + 1 }]);
        expect(late?.subscribers).toEqual(["conn-new"]);
      });

      it("asks the durable tier about client keys within the idempotency window", async () => {
        await h.flush();
        await h.cache.install({ thread, lastSeq: (h.clock.now() - 1000) * 1000, genesis: false });
        const a = attempt();
        expect((await reserve(a)).verify).toBe(true);
        // Its try repeating the call (it timed out) is told again to ask.
        expect((await reserve(a)).verify).toBe(true);
        expect((await reserve(attempt({ clientSupplied: false }))).verify).toBe(false);
        h.clock.advance(h.options.idempotencyTtlSeconds * 1000 + 1);
        expect((await reserve(attempt())).verify).toBe(false);
      });

      it("asks only for one persist bound when PostgreSQL's newest message is older than the window", async () => {
        await h.flush();
        const old = (h.clock.now() - h.options.idempotencyTtlSeconds * 1000 - 5000) * 1000;
        await h.cache.install({ thread, lastSeq: old, genesis: false });
        expect((await reserve(attempt())).verify).toBe(true);
        h.clock.advance(h.options.persistBoundMs + 1);
        expect((await reserve(attempt())).verify).toBe(false);
      });
    });

    describe("erasing a thread", () => {
      it("forgets the thread, its messages and keys, answers its subscribers, and refuses to install it again", async () => {
        const first = await post();
        const second = await post();
        await h.cache.follow(thread.id, "conn-1", null, 10);
        const { subscribers, keys } = await h.eraser.forget(
          [
            {
              threadId: thread.id,
              messageIds: [first.m.id],
              idempotencyKeys: [first.a.input.idempotencyKey],
            },
          ],
          60,
        );
        expect(subscribers.get(thread.id)).toEqual(["conn-1"]);
        expect(keys).toBeGreaterThan(0);
        expect(await h.cache.getThread(thread.id)).toBeNull();
        expect(await h.cache.history(thread.id, { direction: "backward", limit: 10 })).toBeNull();
        // Named by PostgreSQL, or only in the index (not persisted yet): both lookups go.
        expect(await h.cache.getMessage(first.m.id)).toBeNull();
        expect(await h.cache.getMessage(second.m.id)).toBeNull();
        // A request that read the thread before the delete cannot bring it back.
        await h.cache.install({ thread, lastSeq: 0, genesis: false });
        expect(await h.cache.getThread(thread.id)).toBeNull();
        expect((await h.cache.reserve(attempt().input)).kind).toBe("unknown_thread");
      });

      it("sweeps what is left under the thread, with the lookups it names, and the gone mark", async () => {
        const { m } = await post();
        // Without a first pass (it failed): the sweep alone clears the thread.
        expect(await h.eraser.sweep([thread.id])).toBeGreaterThan(0);
        expect(await h.cache.getThread(thread.id)).toBeNull();
        expect(await h.cache.getMessage(m.id)).toBeNull();
        expect(await h.eraser.sweep([thread.id])).toBe(0);
      });

      it("leaves no lookup of a message that a writer in flight stores after the first pass", async () => {
        const a = attempt();
        const r = await reserve(a);
        const m = messageOf(a, r.seq, r.createdAtMs);
        await h.eraser.forget([{ threadId: thread.id, messageIds: [], idempotencyKeys: [] }], 60);
        expect((await store(a, m)).kind).toBe("lost");
        expect(await h.cache.getMessage(m.id)).toBeNull();
        await h.eraser.sweep([thread.id]);
        expect(await h.cache.getMessage(m.id)).toBeNull();
        expect(await h.cache.getThread(thread.id)).toBeNull();
      });

      it("leaves other threads alone", async () => {
        const other = newThread();
        await h.cache.install({ thread: other, lastSeq: 0, genesis: true });
        await h.eraser.forget([{ threadId: thread.id, messageIds: [], idempotencyKeys: [] }], 60);
        await h.eraser.sweep([thread.id]);
        expect(await h.cache.getThread(other.id)).toMatchObject({ id: other.id });
      });
    });
  });
};
