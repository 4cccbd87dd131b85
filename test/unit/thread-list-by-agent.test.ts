/** GET /api/threads?agent=<name>: how an agent (a service principal) finds the threads it answers. */
import { describe, expect, it } from "vitest";
import { ForbiddenError, ValidationError } from "../../lambdas/core/errors.ts";
import type { Limits } from "../../lambdas/core/validation.ts";
import { parseThreadListQuery } from "../../lambdas/core/validation.ts";
import { admin, createWorld, service, user } from "../support/fakes.ts";
import { caught } from "./caught.ts";

const limits: Limits = {
  maxMessageBytes: 16,
  maxMetadataBytes: 32,
  maxTitleLength: 10,
  maxPageSize: 100,
  defaultPageSize: 20,
};

const bot = service("demo-agent");

describe("parseThreadListQuery with agent", () => {
  it("passes the agent on with the page", () => {
    expect(parseThreadListQuery({ agent: "demo" }, limits)).toEqual({ limit: 20, agent: "demo" });
    expect(parseThreadListQuery({ agent: "demo", limit: "5", cursor: "c" }, limits)).toEqual({
      limit: 5,
      cursor: "c",
      agent: "demo",
    });
  });

  it.each([
    ["empty", ""],
    ["too long", "a".repeat(129)],
    ["with a NUL", "de\u0000mo"],
  ])("refuses an agent that is %s with 422", async (_what, agent) => {
    expect(await caught(() => parseThreadListQuery({ agent }, limits))).toBeInstanceOf(ValidationError);
  });
});

describe("ThreadService.list by agent", () => {
  const seed = () => {
    const w = createWorld();
    const asking = [3, 2, 1].map((i) =>
      w.seedThread(i === 2 ? "bob" : "alice", {
        created_at_ms: 1_700_000_000_000 + i,
        metadata: { agent: "demo" },
      }),
    );
    w.seedThread("alice", { created_at_ms: 1_700_000_000_010 });
    w.seedThread("alice", { created_at_ms: 1_700_000_000_011, metadata: { agent: "other" } });
    return { w, asking };
  };

  it("pages a service principal through every owner's threads that name the agent, newest first", async () => {
    const { w, asking } = seed();
    const first = await w.threadService.list(bot, { limit: 2, agent: "demo" });
    expect(first.threads).toEqual(asking.slice(0, 2));
    expect(first.next_cursor).not.toBeNull();
    const rest = await w.threadService.list(bot, {
      limit: 2,
      agent: "demo",
      cursor: first.next_cursor ?? "",
    });
    expect(rest).toEqual({ threads: asking.slice(2), next_cursor: null });
    expect(w.threads.callsTo("listByOwner")).toEqual([]);
  });

  it.each([
    ["a user", user("alice")],
    ["an admin", admin("root")],
  ])("refuses %s with 403 role_not_allowed before reading the store", async (_who, principal) => {
    const { w } = seed();
    const error = await caught(w.threadService.list(principal, { limit: 2, agent: "demo" }));
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error).toMatchObject({ kind: "forbidden", code: "role_not_allowed" });
    expect(w.threads.callsTo("listByAgent")).toEqual([]);
  });

  it("lists a service principal's own threads without an agent", async () => {
    const { w } = seed();
    const own = w.seedThread("demo-agent", { created_at_ms: 1 });
    expect(await w.threadService.list(bot, { limit: 10 })).toEqual({ threads: [own], next_cursor: null });
  });
});
