/**
 * The durable tier's rules, written once: the message, thread and erasure repositories. The same cases run
 * against the in-memory fakes (unit project) and PostgreSQL (integration project).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Message, type Thread, toEpochSeconds } from "../../lambdas/core/model.ts";
import type {
  ErasureRepository,
  MessageRepository,
  NewErasure,
  ThreadRepository,
} from "../../lambdas/core/ports.ts";

export interface RepositoryHarness {
  readonly messages: MessageRepository;
  readonly threads: ThreadRepository;
  readonly erasures: ErasureRepository;
  close(): Promise<void>;
}

const thread = (owner: string, createdAtMs = Date.now()): Thread => ({
  id: randomUUID(),
  owner_id: owner,
  title: null,
  metadata: { k: "v" },
  created_at: toEpochSeconds(createdAtMs),
  created_at_ms: createdAtMs,
});

let seqBase = Date.now() * 1000;

const message = (t: Thread, overrides: Partial<Message> = {}): Message => {
  const ms = Date.now();
  seqBase += 1000;
  return {
    id: randomUUID(),
    thread_id: t.id,
    seq: seqBase,
    role: "user",
    user_id: t.owner_id,
    content: `hello ${randomUUID()}`,
    metadata: {},
    client_message_id: randomUUID(),
    created_at: toEpochSeconds(ms),
    created_at_ms: ms,
    ...overrides,
  };
};

export const repositoryContract = (name: string, make: () => Promise<RepositoryHarness>): void => {
  describe(`repositories contract: ${name}`, () => {
    let h: RepositoryHarness;
    beforeAll(async () => {
      h = await make();
    });
    afterAll(async () => {
      await h.close();
    });

    const newThread = async (owner = `u-${randomUUID().slice(0, 8)}`) => h.threads.create(thread(owner));

    describe("messages", () => {
      it("persists a batch once: a repeat answers with the stored rows", async () => {
        const t = await newThread();
        const a = message(t);
        const b = message(t);
        const first = await h.messages.persistBatch([
          { message: a, ownerId: t.owner_id },
          { message: b, ownerId: t.owner_id },
          { message: a, ownerId: t.owner_id },
        ]);
        expect(
          first
            .filter((r) => r.inserted)
            .map((r) => r.message.id)
            .sort(),
        ).toEqual([a.id, b.id].sort());
        const again = await h.messages.persistBatch([
          { message: { ...a, content: "changed" }, ownerId: t.owner_id },
        ]);
        expect(again).toEqual([{ message: a, inserted: false }]);
        expect(await h.messages.count(t.id)).toBe(2);
      });

      describe("a streamed reply: stored opened, then in its final form", () => {
        const reply = (t: Thread) => {
          const opened = message(t, { role: "assistant", user_id: "agent", content: "", state: "streaming" });
          const { state: _s, ...base } = opened;
          const ended = (state: "complete" | "cancelled", content: string): Message => ({
            ...base,
            content,
            metadata: { done: true },
            state,
            finish_reason: state === "complete" ? "stop" : "cancelled",
            usage: { model: "m1", input_tokens: 3, output_tokens: 5 },
            first_delta_ms: 12,
            duration_ms: 340,
          });
          return { opened, ended };
        };

        it("stores the opened row, then replaces it with the final one, once", async () => {
          const t = await newThread();
          const { opened, ended } = reply(t);
          expect(await h.messages.persistBatch([{ message: opened, ownerId: t.owner_id }])).toEqual([
            { message: opened, inserted: true },
          ]);
          const final = ended("complete", "the whole answer");
          expect(await h.messages.persistBatch([{ message: final, ownerId: t.owner_id }])).toEqual([
            { message: final, inserted: true },
          ]);
          // A redelivered final, or the opened record coming again, changes nothing.
          expect(
            await h.messages.persistBatch([
              { message: final, ownerId: t.owner_id },
              { message: opened, ownerId: t.owner_id },
            ]),
          ).toEqual([{ message: final, inserted: false }]);
          expect(await h.messages.findById(opened.id)).toEqual({ message: final, ownerId: t.owner_id });
          expect(await h.messages.count(t.id)).toBe(1);
        });

        it("keeps the first ending stored: a later, different ending does not replace it", async () => {
          const t = await newThread();
          const { opened, ended } = reply(t);
          await h.messages.persistBatch([{ message: opened, ownerId: t.owner_id }]);
          const cancelled = ended("cancelled", "part");
          await h.messages.persistBatch([{ message: cancelled, ownerId: t.owner_id }]);
          await h.messages.persistBatch([{ message: ended("complete", "all of it"), ownerId: t.owner_id }]);
          expect((await h.messages.findById(opened.id))?.message).toEqual(cancelled);
        });

        it("stores a final that arrives before its opened row, and keeps it when the opened one comes", async () => {
          const t = await newThread();
          const { opened, ended } = reply(t);
          const final = ended("complete", "early");
          expect(await h.messages.persistBatch([{ message: final, ownerId: t.owner_id }])).toEqual([
            { message: final, inserted: true },
          ]);
          expect(await h.messages.persistBatch([{ message: opened, ownerId: t.owner_id }])).toEqual([
            { message: final, inserted: false },
          ]);
        });
      });

      it("commits with a given seq, or allocates one; a repeat answers with the stored row", async () => {
        const t = await newThread();
        const given = message(t);
        expect(await h.messages.commit(given)).toEqual({ message: given, inserted: true });
        const allocated = await h.messages.commit({ ...message(t), seq: null });
        expect(allocated?.inserted).toBe(true);
        const second = await h.messages.commit({ ...message(t), seq: null });
        expect(second?.message.seq).toBeGreaterThan(allocated?.message.seq as number);
        expect(await h.messages.commit({ ...given, content: "other" })).toEqual({
          message: given,
          inserted: false,
        });
        expect(await h.messages.commit({ ...message(t), thread_id: randomUUID() })).toBeNull();
      });

      it("answers concurrent commits of one id with the one stored row", async () => {
        const t = await newThread();
        for (let round = 0; round < 10; round++) {
          const m = message(t);
          const results = await Promise.all([
            h.messages.commit(m),
            h.messages.commit(m),
            h.messages.commit(m),
          ]);
          expect(results.map((r) => r?.message)).toEqual([m, m, m]);
          expect(results.filter((r) => r?.inserted)).toHaveLength(1);
        }
      });

      it("refuses a different message whose (thread, seq) is taken", async () => {
        const t = await newThread();
        const m = message(t);
        await h.messages.commit(m);
        const clash = message(t, { seq: m.seq });
        await expect(h.messages.commit(clash)).rejects.toThrow();
        await expect(h.messages.persistBatch([{ message: clash, ownerId: t.owner_id }])).rejects.toThrow();
        expect(await h.messages.findById(clash.id)).toBeNull();
      });

      it("finds a message with its thread's owner", async () => {
        const t = await newThread();
        const m = message(t);
        await h.messages.commit(m);
        expect(await h.messages.findById(m.id)).toEqual({ message: m, ownerId: t.owner_id });
        expect(await h.messages.findById(randomUUID())).toBeNull();
      });

      it("pages history in seq order both ways, with an upper bound", async () => {
        const t = await newThread();
        const all: Message[] = [];
        for (let i = 0; i < 7; i++) all.push(message(t));
        await h.messages.persistBatch(all.map((m) => ({ message: m, ownerId: t.owner_id })));
        const seqs = (ms: readonly Message[]) => ms.map((m) => m.seq);
        const newest = await h.messages.history(t.id, { direction: "backward", limit: 3 });
        expect(seqs(newest.messages)).toEqual(seqs(all.slice(4)));
        expect(newest.next_cursor).toBe(all[4]?.seq);
        const older = await h.messages.history(t.id, {
          direction: "backward",
          before: newest.next_cursor as number,
          limit: 10,
        });
        expect(seqs(older.messages)).toEqual(seqs(all.slice(0, 4)));
        expect(older.next_cursor).toBeNull();
        const fwd = await h.messages.history(t.id, {
          direction: "forward",
          after: all[1]?.seq as number,
          limit: 2,
        });
        expect(seqs(fwd.messages)).toEqual(seqs(all.slice(2, 4)));
        expect(fwd.next_cursor).toBe(all[3]?.seq);
        const bounded = await h.messages.history(
          t.id,
          { direction: "forward", after: 0, limit: 10 },
          all[3]?.seq,
        );
        expect(seqs(bounded.messages)).toEqual(seqs(all.slice(0, 3)));
        expect(bounded.next_cursor).toBeNull();
        const under = await h.messages.history(t.id, { direction: "backward", limit: 2 }, all[3]?.seq);
        expect(seqs(under.messages)).toEqual(seqs(all.slice(1, 3)));
      });

      it("keeps synchronously committed messages in the outbox until cleared", async () => {
        const t = await newThread();
        const m = message(t);
        await h.messages.commit(m);
        const pending = await h.messages.pendingOutbox(10_000);
        expect(pending.map((x) => x.id)).toContain(m.id);
        await h.messages.clearOutbox([m.id]);
        expect((await h.messages.pendingOutbox(10_000)).map((x) => x.id)).not.toContain(m.id);
        await h.messages.addToOutbox([m.id]);
        await h.messages.addToOutbox([m.id]);
        expect((await h.messages.pendingOutbox(10_000)).filter((x) => x.id === m.id)).toHaveLength(1);
        await h.messages.clearOutbox([m.id]);
      });

      it("defers an outbox entry that failed on its own, parks it after maxAttempts, and keeps it until cleared", async () => {
        const t = await newThread();
        const m = message(t);
        await h.messages.commit(m);
        const due = async () => (await h.messages.pendingOutbox(10_000)).some((x) => x.id === m.id);
        const parkedBefore = await h.messages.parkedOutbox();
        const noDelay = { maxAttempts: 2, baseDelaySeconds: 0, maxDelaySeconds: 0 };

        await h.messages.deferOutbox(m.id, "refused", noDelay);
        expect(await due()).toBe(true);
        await h.messages.deferOutbox(m.id, "refused again", noDelay);
        expect(await due()).toBe(false);
        expect(await h.messages.parkedOutbox()).toBe(parkedBefore + 1);
        // Handing it over again does not release it.
        await h.messages.addToOutbox([m.id]);
        expect(await due()).toBe(false);

        await h.messages.clearOutbox([m.id]);
        expect(await h.messages.parkedOutbox()).toBe(parkedBefore);
      });

      it("does not hand out a deferred outbox entry before its delay", async () => {
        const t = await newThread();
        const [m, other] = [message(t), message(t)];
        await h.messages.commit(m);
        await h.messages.commit(other);
        const parkedBefore = await h.messages.parkedOutbox();

        await h.messages.deferOutbox(m.id, "refused", {
          maxAttempts: 5,
          baseDelaySeconds: 3600,
          maxDelaySeconds: 3600,
        });

        const pending = (await h.messages.pendingOutbox(10_000)).map((x) => x.id);
        expect(pending).not.toContain(m.id);
        expect(pending).toContain(other.id);
        expect(await h.messages.parkedOutbox()).toBe(parkedBefore);
        await h.messages.clearOutbox([m.id, other.id]);
      });
    });

    describe("threads", () => {
      it("creates, reads and lists a user's threads newest first", async () => {
        const owner = `lister-${randomUUID().slice(0, 8)}`;
        const made: Thread[] = [];
        for (let i = 0; i < 3; i++) made.push(await h.threads.create(thread(owner, 1_700_000_000_000 + i)));
        expect(await h.threads.get(made[0]?.id as string)).toEqual(made[0]);
        expect(await h.threads.get(randomUUID())).toBeNull();
        const first = await h.threads.listByOwner(owner, { limit: 2 });
        expect(first.map((x) => x.id)).toEqual([made[2]?.id, made[1]?.id]);
        const last = first.at(-1) as Thread;
        const rest = await h.threads.listByOwner(owner, {
          limit: 2,
          after: { created_at_ms: last.created_at_ms, id: last.id },
        });
        expect(rest.map((x) => x.id)).toEqual([made[0]?.id]);
      });

      it("updates a thread's title, metadata and archived mark, leaving out what a change does not name", async () => {
        const t = await newThread();
        const renamed = await h.threads.update(t.id, { title: "Renamed" }, 1_800_000_000_000);
        expect(renamed).toEqual({ ...t, title: "Renamed" });
        const archived = await h.threads.update(
          t.id,
          { metadata: { x: 1 }, archived: true },
          1_800_000_000_001,
        );
        expect(archived).toEqual({
          ...t,
          title: "Renamed",
          metadata: { x: 1 },
          archived_at_ms: 1_800_000_000_001,
        });
        // Archiving again keeps the first time; a null title clears it.
        expect(await h.threads.update(t.id, { archived: true, title: null }, 1_900_000_000_000)).toEqual({
          ...t,
          title: null,
          metadata: { x: 1 },
          archived_at_ms: 1_800_000_000_001,
        });
        expect(await h.threads.update(t.id, { archived: false }, 1_900_000_000_000)).toEqual({
          ...t,
          title: null,
          metadata: { x: 1 },
        });
        expect(await h.threads.get(t.id)).toEqual({ ...t, title: null, metadata: { x: 1 } });
        expect(await h.threads.update(randomUUID(), { title: "x" }, 1)).toBeNull();
      });

      it("leaves archived threads out of a user's list unless asked for them", async () => {
        const owner = `archiver-${randomUUID().slice(0, 8)}`;
        const kept = await h.threads.create(thread(owner, 1_700_000_000_000));
        const shelved = await h.threads.create(thread(owner, 1_700_000_000_001));
        await h.threads.update(shelved.id, { archived: true }, 1_800_000_000_000);
        const ids = async (archived?: "exclude" | "only" | "include") =>
          (await h.threads.listByOwner(owner, { limit: 10, ...(archived ? { archived } : {}) })).map(
            (x) => x.id,
          );
        expect(await ids()).toEqual([kept.id]);
        expect(await ids("exclude")).toEqual([kept.id]);
        expect(await ids("only")).toEqual([shelved.id]);
        expect(await ids("include")).toEqual([shelved.id, kept.id]);
      });

      it("lists the threads that name an agent, of any owner, newest first", async () => {
        const agent = `agent-${randomUUID().slice(0, 8)}`;
        const asking = (owner: string, ms: number, value: unknown = agent): Thread => ({
          ...thread(owner, ms),
          metadata: { agent: value, topic: "x" },
        });
        const a = await h.threads.create(asking("lister-a", 1_700_000_000_001));
        const b = await h.threads.create(asking("lister-b", 1_700_000_000_003));
        const c = await h.threads.create(asking("lister-a", 1_700_000_000_002));
        // Another agent, no agent, the name under another key or not as a string: not listed.
        await h.threads.create(asking("lister-a", 1_700_000_000_004, `${agent}-other`));
        await h.threads.create(thread("lister-a", 1_700_000_000_005));
        await h.threads.create({ ...thread("lister-a", 1_700_000_000_006), metadata: { bot: agent } });
        await h.threads.create(asking("lister-a", 1_700_000_000_007, [agent]));
        await h.threads.create(asking("lister-a", 1_700_000_000_008, { name: agent }));

        const first = await h.threads.listByAgent(agent, { limit: 2 });
        expect(first).toEqual([b, c]);
        const last = first.at(-1) as Thread;
        const rest = await h.threads.listByAgent(agent, {
          limit: 2,
          after: { created_at_ms: last.created_at_ms, id: last.id },
        });
        expect(rest).toEqual([a]);
        expect(await h.threads.listByAgent(`${agent}-nobody`, { limit: 10 })).toEqual([]);
        const number = 1_000_000_000 + Math.floor(Math.random() * 1_000_000_000);
        await h.threads.create(asking("lister-a", 1_700_000_000_009, number));
        expect(await h.threads.listByAgent(String(number), { limit: 10 })).toEqual([]);
      });

      it("installs a thread with the highest seq it has seen, stored or allocated", async () => {
        const t = await newThread();
        expect(await h.threads.getForInstall(t.id)).toEqual({ thread: t, lastSeq: 0, genesis: false });
        const m = message(t);
        await h.messages.persistBatch([{ message: m, ownerId: t.owner_id }]);
        expect((await h.threads.getForInstall(t.id))?.lastSeq).toBe(m.seq);
        const allocated = await h.messages.commit({ ...message(t), seq: null });
        expect(allocated?.message.seq).toBeGreaterThan(0);
        expect((await h.threads.getForInstall(t.id))?.lastSeq).toBe(
          Math.max(m.seq, allocated?.message.seq as number),
        );
        expect(await h.threads.getForInstall(randomUUID())).toBeNull();
      });
    });

    describe("erasures", () => {
      const erasure = (overrides: Partial<NewErasure> = {}): NewErasure => ({
        id: randomUUID(),
        kind: "thread",
        subject: "s",
        requested_by: "alice",
        requested_at_ms: 1_000,
        stage: "redis",
        postgres_done_at_ms: 1_000,
        ...overrides,
      });

      it("tombstones and deletes threads with their messages, and records the erasure with its counts in one go", async () => {
        const t = await newThread("owner-e1");
        const [a, b] = [message(t), message(t, { client_message_id: null })];
        await h.messages.persistBatch([a, b].map((m) => ({ message: m, ownerId: t.owner_id })));
        const e = erasure({ subject: t.id });

        const erased = await h.erasures.eraseThreads({
          erasureId: e.id,
          create: e,
          threadIds: [t.id],
          ownerId: t.owner_id,
          nowMs: 2_000,
        });

        expect(erased).toEqual([
          {
            threadId: t.id,
            messageIds: expect.arrayContaining([a.id, b.id]),
            idempotencyKeys: expect.arrayContaining([
              `${t.owner_id}|${a.client_message_id}`,
              `${t.owner_id}|id:${b.id}`,
            ]),
          },
        ]);
        expect(await h.threads.get(t.id)).toBeNull();
        expect(await h.messages.findById(a.id)).toBeNull();
        expect(await h.messages.count(t.id)).toBe(0);
        expect(await h.erasures.get(e.id)).toMatchObject({
          threads: 1,
          messages: 2,
          stage: "redis",
          completed_at_ms: null,
        });
        expect(await h.erasures.erasedThreads(e.id, null, 10)).toEqual([t.id]);
      });

      it("drops a message of an erased thread that arrives later: nothing stored", async () => {
        const t = await newThread("owner-e2");
        const e = erasure();
        await h.erasures.eraseThreads({ erasureId: e.id, create: e, threadIds: [t.id], nowMs: 2_000 });
        const late = message(t);
        const other = await newThread("owner-e2");
        const kept = message(other);
        const results = await h.messages.persistBatch(
          [late, kept].map((m) => ({ message: m, ownerId: "owner-e2" })),
        );
        expect(results.find((r) => r.message.id === late.id)).toMatchObject({
          inserted: false,
          erased: true,
        });
        expect(results.find((r) => r.message.id === kept.id)).toMatchObject({ inserted: true });
        expect(await h.messages.findById(late.id)).toBeNull();
      });

      it("skips threads that are not the owner's, and writes no record when nothing was erased", async () => {
        const t = await newThread("owner-e3");
        const e = erasure();
        expect(
          await h.erasures.eraseThreads({
            erasureId: e.id,
            create: e,
            threadIds: [t.id],
            ownerId: "mallory",
            nowMs: 1,
          }),
        ).toEqual([]);
        expect(await h.erasures.get(e.id)).toBeNull();
        expect(await h.threads.get(t.id)).not.toBeNull();
      });

      it("leases an erasure to one worker at a time, until its progress is recorded", async () => {
        const e = await h.erasures.create(erasure({ stage: "postgres", postgres_done_at_ms: null }));
        expect(e).toMatchObject({
          id: e.id,
          stage: "postgres",
          due_at_ms: 1_000,
          attempts: 0,
          last_error: null,
        });
        expect(await h.erasures.claim(e.id, 5_000, 65_000)).toMatchObject({ id: e.id });
        expect(await h.erasures.claim(e.id, 6_000, 66_000)).toBeNull();
        expect(await h.erasures.stalled(10_000, 6_000, 10)).not.toContain(e.id);
        await h.erasures.update(e.id, {
          stage: "clickhouse",
          attempts: 2,
          last_error: "down",
          due_at_ms: 7_000,
        });
        expect(await h.erasures.get(e.id)).toMatchObject({
          stage: "clickhouse",
          attempts: 2,
          last_error: "down",
        });
        expect(await h.erasures.stalled(10_000, 6_000, 100)).toContain(e.id);
        expect(await h.erasures.claim(e.id, 6_000, 66_000)).toMatchObject({ stage: "clickhouse" });
        await h.erasures.update(e.id, { stage: "done", completed_at_ms: 8_000, last_error: null });
        expect(await h.erasures.claim(e.id, 100_000, 160_000)).toBeNull();
        expect(await h.erasures.get(e.id)).toMatchObject({ last_error: null, completed_at_ms: 8_000 });
      });

      it("finds a user's threads, and threads whose newest message is older than a cutoff", async () => {
        const owner = `owner-${randomUUID().slice(0, 8)}`;
        const quiet = await h.threads.create(thread(owner, 1_000));
        const busy = await h.threads.create(thread(owner, 1_000));
        await h.messages.persistBatch([{ message: message(busy), ownerId: owner }]);
        expect((await h.erasures.ownedThreads(owner, 10)).sort()).toEqual([quiet.id, busy.id].sort());
        const expired = await h.erasures.expiredThreads(5_000, 1000);
        expect(expired).toContain(quiet.id);
        expect(expired).not.toContain(busy.id);
        const e = await h.erasures.create(erasure({ kind: "retention", requested_by: "retention" }));
        // Under the lock, a thread active since it was picked is left alone.
        expect(
          await h.erasures.eraseThreads({
            erasureId: e.id,
            threadIds: [busy.id],
            idleBefore: 5_000,
            nowMs: 6_000,
          }),
        ).toEqual([]);
        expect(await h.threads.get(busy.id)).not.toBeNull();
        expect(await h.erasures.pending("retention")).toBeGreaterThan(0);
        await h.erasures.update(e.id, { completed_at_ms: 2_000, stage: "done" });
      });
    });
  });
};
