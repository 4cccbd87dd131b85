import { describe, expect, it } from "vitest";
import { ForbiddenError, NotFoundError, ServiceUnavailableError } from "../../lambdas/core/errors.ts";
import { admin, createWorld, makeMessage, postInput, service, user } from "../support/fakes.ts";
import { caught } from "./caught.ts";

const alice = user("alice");
const root = admin("root");
const MISSING = "0196a0b0-0000-7000-8000-00000000000f";

const expectThreadNotFound = (error: unknown): void => {
  expect(error).toBeInstanceOf(NotFoundError);
  expect(error).toMatchObject({ kind: "not_found", code: "thread_not_found" });
};

describe("ThreadAccess.resolve", () => {
  it("answers from the hot tier when it has the thread, without asking PostgreSQL", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    expect(await w.access.resolve(thread.id)).toEqual(thread);
    expect(w.threads.calls).toEqual([]);
  });

  it("reads a thread the hot tier lacks from PostgreSQL and installs it, with the highest seq PostgreSQL has seen", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.messages.put(makeMessage(thread, 41), makeMessage(thread, 42));

    expect(await w.access.resolve(thread.id)).toEqual(thread);

    expect(w.threads.callsTo("getForInstall")).toEqual([[thread.id]]);
    // Restored, not new: messages of it may exist elsewhere.
    expect(w.cache.callsTo("install")).toEqual([[thread, 42, false]]);
    expect(await w.access.resolve(thread.id)).toEqual(thread);
    expect(w.threads.callsTo("getForInstall")).toHaveLength(1);
  });

  it("answers null for a thread that exists nowhere, installing nothing", async () => {
    const w = createWorld();
    expect(await w.access.resolve(MISSING)).toBeNull();
    expect(w.cache.callsTo("install")).toEqual([]);
  });

  it("reads PostgreSQL, with warnings, while the hot tier is down", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    w.redisDown();
    expect(await w.access.resolve(thread.id)).toEqual(thread);
    expect(w.diagnostics.messages()).toEqual([
      "cache unavailable for thread lookup",
      "could not install thread in cache",
    ]);
  });

  it("answers 503 when the hot tier lacks the thread and PostgreSQL is down", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.threads.down = true;
    const error = await caught(w.access.resolve(thread.id));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({ message: "Thread store unavailable" });
  });

  it("lets a non-outage PostgreSQL error propagate unchanged", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const bug = new Error("relation does not exist");
    w.threads.fail("getForInstall", bug);
    expect(await caught(w.access.resolve(thread.id))).toBe(bug);
  });
});

describe("ThreadAccess.accessible", () => {
  it("gives the owner and service principals the thread", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    expect(await w.access.accessible(alice, thread.id)).toEqual(thread);
    expect(await w.access.accessible(service("agent"), thread.id)).toEqual(thread);
  });

  it("answers thread_not_found for another user (admins included), exactly as for a missing thread", async () => {
    const w = createWorld();
    const thread = w.cachedThread("alice");
    expectThreadNotFound(await caught(w.access.accessible(user("bob"), thread.id)));
    expectThreadNotFound(await caught(w.access.accessible(root, thread.id)));
    expectThreadNotFound(await caught(w.access.accessible(alice, MISSING)));
  });
});

describe("ThreadAccess.recover (admin: reload a thread into the hot tier)", () => {
  it("requires the admin role and touches no tier otherwise", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    for (const principal of [alice, service("agent")]) {
      const error = await caught(w.access.recover(principal, thread.id));
      expect(error).toBeInstanceOf(ForbiddenError);
      expect(error).toMatchObject({ code: "admin_required" });
    }
    expect(w.threads.calls).toEqual([]);
    expect(w.cache.calls).toEqual([]);
  });

  it("installs the thread and loads its newest messages, so that reads come from the hot tier", async () => {
    const w = createWorld({ historyCacheSize: 3 });
    const thread = w.seedThread("alice");
    const list = Array.from({ length: 5 }, (_, i) => makeMessage(thread, 10 + i));
    w.messages.put(...list);

    expect(await w.access.recover(root, thread.id)).toEqual({ backfilled: 3 });

    expect(w.cache.callsTo("install")).toEqual([[thread, 14, false]]);
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, list.slice(2), false]]);
    expect(await w.cache.getThread(thread.id)).toEqual(thread);
    expect(w.cache.cachedSeqs(thread.id)).toEqual([12, 13, 14]);
    const page = await w.reader.history(alice, thread.id, { direction: "backward", limit: 2 });
    expect(page).toMatchObject({ source: "cache", value: { messages: list.slice(3), next_cursor: 13 } });
  });

  it("marks a thread whose messages all fit as complete", async () => {
    const w = createWorld({ historyCacheSize: 10 });
    const thread = w.seedThread("alice");
    const list = [makeMessage(thread, 1), makeMessage(thread, 2)];
    w.messages.put(...list);
    expect(await w.access.recover(root, thread.id)).toEqual({ backfilled: 2 });
    expect(w.cache.callsTo("warm")).toEqual([[thread.id, list, true]]);
  });

  it("keeps the hot state of a thread the hot tier has (same epoch, same messages), adding older ones", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    const old = makeMessage(thread, 5);
    w.messages.put(old);
    const { message, position } = await w.acceptor.accept({
      principal: alice,
      threadId: thread.id,
      input: postInput("fresh"),
    });

    await w.access.recover(root, thread.id);

    expect(w.cache.cachedSeqs(thread.id)).toEqual([5, message.seq]);
    expect((await w.cache.follow(thread.id, "conn-1", null, 10))?.position.epoch).toBe(position?.epoch);
  });

  it("answers thread_not_found for a thread PostgreSQL does not have", async () => {
    const w = createWorld();
    expectThreadNotFound(await caught(w.access.recover(root, MISSING)));
    expect(w.cache.calls).toEqual([]);
  });

  it("answers 503 when the hot tier or PostgreSQL is down", async () => {
    const w = createWorld();
    const thread = w.seedThread("alice");
    w.redisDown();
    const cacheDown = await caught(w.access.recover(root, thread.id));
    expect(cacheDown).toBeInstanceOf(ServiceUnavailableError);
    expect(cacheDown).toMatchObject({ message: "Cache unavailable" });
    w.cache.heal();
    w.messages.down = true;
    const databaseDown = await caught(w.access.recover(root, thread.id));
    expect(databaseDown).toBeInstanceOf(ServiceUnavailableError);
    expect(databaseDown).toMatchObject({ message: "Database unavailable" });
  });
});
