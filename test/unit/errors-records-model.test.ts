import { describe, expect, it } from "vitest";
import {
  ConflictError,
  describeError,
  isTierUnavailable,
  requestInProgress,
  ServiceUnavailableError,
  TierUnavailableError,
  unavailableAs,
} from "../../lambdas/core/errors.ts";
import { canAccessThread, serializeMessage, toEpochSeconds } from "../../lambdas/core/model.ts";
import {
  InvalidRecordError,
  parseAnalyticsEnvelope,
  parsePersistEnvelope,
  retryDelay,
  serializeAnalyticsEnvelope,
} from "../../lambdas/core/records.ts";
import { Stopwatch } from "../../lambdas/core/timing.ts";
import { admin, makeMessage, makeThread, service, user } from "../support/fakes.ts";
import { caught } from "./caught.ts";

describe("unavailableAs", () => {
  it("turns a tier outage into a 503 with the given message and the outage as cause", async () => {
    const outage = new TierUnavailableError("postgres", "timeout");
    const error = await caught(Promise.reject(outage).catch(unavailableAs("Database unavailable")));
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(error).toMatchObject({
      kind: "unavailable",
      code: "service_unavailable",
      message: "Database unavailable",
      cause: outage,
      clientMessageId: undefined,
    });
  });

  it("carries the key to retry with when one is given", async () => {
    const outage = new TierUnavailableError("postgres", "timeout");
    const error = await caught(
      Promise.reject(outage).catch(
        unavailableAs("Cache and database both unavailable", { clientMessageId: "c-1" }),
      ),
    );
    expect(error).toMatchObject({ code: "service_unavailable", clientMessageId: "c-1", cause: outage });
  });

  it("lets every other error through unchanged", async () => {
    const bug = new TypeError("x is undefined");
    expect(await caught(Promise.reject(bug).catch(unavailableAs("Database unavailable")))).toBe(bug);
    expect(await caught(Promise.reject("text").catch(unavailableAs("Database unavailable")))).toBe("text");
  });

  it("recognises outages and describes errors", () => {
    const outage = new TierUnavailableError("sqs", "circuit open");
    expect(outage.message).toBe("sqs unavailable: circuit open");
    expect(isTierUnavailable(outage)).toBe(true);
    expect(isTierUnavailable(new Error("sqs unavailable: circuit open"))).toBe(false);
    expect(describeError(outage)).toBe("sqs unavailable: circuit open");
    expect(describeError(42)).toBe("42");
  });

  it("counts an outage as maybe applied unless it was refused before it was sent", () => {
    expect(new TierUnavailableError("redis", "timeout").maybeApplied).toBe(true);
    expect(new TierUnavailableError("redis", "circuit open", { maybeApplied: false }).maybeApplied).toBe(
      false,
    );
  });
});

describe("ServiceUnavailableError, ConflictError and requestInProgress", () => {
  it("a 503 carries its cause and, when the message may have been stored, the key to retry with", () => {
    const cause = new Error("both down");
    expect(new ServiceUnavailableError("x", { cause, clientMessageId: "c-9" })).toMatchObject({
      kind: "unavailable",
      code: "service_unavailable",
      message: "x",
      cause,
      clientMessageId: "c-9",
    });
    expect(new ServiceUnavailableError("y").clientMessageId).toBeUndefined();
  });

  it("a conflict keeps its code; a try in flight is the request_in_progress conflict", () => {
    expect(new ConflictError("idempotency_key_reused", "m")).toMatchObject({
      name: "ConflictError",
      kind: "conflict",
      code: "idempotency_key_reused",
    });
    const inProgress = requestInProgress();
    expect(inProgress).toBeInstanceOf(ConflictError);
    expect(inProgress).toMatchObject({ kind: "conflict", code: "request_in_progress" });
  });
});

describe("canAccessThread", () => {
  const thread = { owner_id: "alice" };
  it("lets the owner and service principals in, and nobody else (admins included)", () => {
    expect(canAccessThread(user("alice"), thread)).toBe(true);
    expect(canAccessThread(service("agent"), thread)).toBe(true);
    expect(canAccessThread(user("bob"), thread)).toBe(false);
    expect(canAccessThread(admin("root"), thread)).toBe(false);
  });
});

describe("serializeMessage and toEpochSeconds", () => {
  it("writes the fields in one canonical order whatever the object's key order", () => {
    const m = makeMessage(makeThread("alice"), 3);
    const shuffled = Object.fromEntries(Object.entries(m).reverse()) as typeof m;
    expect(serializeMessage(shuffled)).toBe(serializeMessage(m));
    expect(Object.keys(JSON.parse(serializeMessage(m)) as object)).toEqual([
      "id",
      "thread_id",
      "seq",
      "role",
      "user_id",
      "content",
      "metadata",
      "client_message_id",
      "created_at",
      "created_at_ms",
    ]);
  });

  it("floors milliseconds to epoch seconds", () => {
    expect(toEpochSeconds(1_750_000_000_999)).toBe(1_750_000_000);
  });
});

describe("queue records", () => {
  const message = makeMessage(makeThread("alice"), 3);

  it("parse a persist envelope and an analytics envelope written by the producers", () => {
    const envelope = { v: 1, message, owner_id: "alice", accepted_at_ms: 5 } as const;
    expect(parsePersistEnvelope(JSON.stringify(envelope))).toEqual(envelope);
    expect(parseAnalyticsEnvelope(serializeAnalyticsEnvelope([message]))).toEqual({
      messages: [message],
      invalid: [],
    });
  });

  it("check each message of an analytics record on its own: the valid ones, and why the others are not", () => {
    const body = JSON.stringify({ v: 1, messages: [message, { ...message, seq: -1 }, "x"] });
    const { messages, invalid } = parseAnalyticsEnvelope(body);
    expect(messages).toEqual([message]);
    expect(invalid).toHaveLength(2);
    expect(invalid[0]).toMatch(/^message 1 does not match its schema/);
    expect(invalid[1]).toMatch(/^message 2 does not match its schema/);
  });

  it.each([
    ["not JSON", "{"],
    ["another version", JSON.stringify({ v: 2, message, owner_id: "alice", accepted_at_ms: 5 })],
    ["an empty owner", JSON.stringify({ v: 1, message, owner_id: "", accepted_at_ms: 5 })],
    ["an unknown field", JSON.stringify({ v: 1, message, owner_id: "a", accepted_at_ms: 5, x: 1 })],
    [
      "an unknown role",
      JSON.stringify({ v: 1, message: { ...message, role: "bot" }, owner_id: "a", accepted_at_ms: 5 }),
    ],
  ])("refuse a persist record with %s as InvalidRecordError", async (_what, body) => {
    expect(await caught(() => parsePersistEnvelope(body))).toBeInstanceOf(InvalidRecordError);
  });

  it("refuse an analytics record without messages", async () => {
    expect(await caught(() => parseAnalyticsEnvelope(JSON.stringify({ v: 1, messages: [] })))).toBeInstanceOf(
      InvalidRecordError,
    );
  });

  it("double the retry delay with each receive, up to the maximum", () => {
    const policy = { baseDelaySeconds: 3, maxDelaySeconds: 50 };
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => retryDelay(policy, n))).toEqual([3, 3, 6, 12, 24, 48, 50]);
  });
});

describe("Stopwatch", () => {
  it("records a timing for work that succeeds and for work that fails, then the total", async () => {
    const watch = new Stopwatch();
    expect(await watch.time("cache", async () => 1)).toBe(1);
    const failure = new Error("no");
    expect(await caught(watch.time("db", async () => Promise.reject(failure)))).toBe(failure);
    expect(watch.timings.map((t) => t.name)).toEqual(["cache", "db"]);
    expect(watch.total().name).toBe("total");
    expect(watch.total().ms).toBeGreaterThanOrEqual(Math.max(...watch.timings.map((t) => t.ms)));
  });
});
